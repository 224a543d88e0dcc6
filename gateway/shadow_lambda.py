"""Shadow copies on Lambda: an invocation ends with its answer, so the comparison runs in an
asynchronous invocation (`InvocationType=Event`) of the gateway's own function.

The serving invocation, once the client's answer is collected, sends its own function one
event `{"gateway_shadow": {...}}` carrying the request and the primary's answer (base64) and
a shared secret (`GATEWAY_SHADOW_SECRET`; without it nothing is sent: counted as skipped).
The Invoke API answers 202 at once, so the client waits for that call only (a few ms), never
for the candidate. A payload over Lambda's 256 KB asynchronous limit is not sent (skipped).
The comparison invocation checks the secret, asks the candidate (a fresh upstream on its own
event loop, closed after), compares and records into this sandbox's store (per sandbox, or
fleet-wide with a Redis store). Cost: one extra asynchronous invocation per copied request,
lasting about the candidate's latency.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import os
import time
from typing import Any

from gateway.parity.compare import Answer
from gateway.parity.evidence import request_line
from gateway.parity.recorder import Pair
from gateway.runtime import Runtime, build_upstream
from gateway.shadowing import SHADOW_HEADER, Shadowing, Tee, TooLarge, ask
from gateway.telemetry.access_log import emit, shadow_record
from gateway.upstreams.base import UpstreamRequest

logger = logging.getLogger("gateway.shadow")

EVENT_KEY = "gateway_shadow"
SECRET_ENV = "GATEWAY_SHADOW_SECRET"
MAX_PAYLOAD = 256 * 1024
"""Lambda's limit on an asynchronous invocation's payload."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _headers(headers: Any) -> list[list[str]]:
    return [[_b64(name), _b64(value)] for name, value in headers]


def payload(tee: Tee, secret: str) -> bytes | None:
    """The comparison event for `tee`, or None when it would not fit an async invoke."""
    request = tee.request
    body = request.body if isinstance(request.body, bytes) else b""
    event = {
        EVENT_KEY: {
            "secret": secret,
            "route": tee.route.name,
            "primary_target": tee.primary_target,
            "request": {
                "method": request.method,
                "path": _b64(request.path),
                "query": _b64(request.query),
                "headers": _headers(request.headers),
                "body": _b64(body),
            },
            "primary": {
                "status": tee.status,
                "headers": _headers(tee.headers),
                "body": _b64(b"".join(tee.chunks)),
            },
        }
    }
    data = json.dumps(event, separators=(",", ":")).encode()
    return data if len(data) <= MAX_PAYLOAD else None


def hand_off(shadowing: Shadowing, tee: Tee, status: int) -> None:
    """In the serving invocation: send the comparison to this function, asynchronously."""
    name = tee.route.name
    secret = os.environ.get(SECRET_ENV)
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    data = payload(tee, secret) if secret and function else None
    if data is None or tee.over or not tee.done or status != tee.status:
        shadowing.count(name, "skipped")
        emit(shadow_record(name, "skipped", mismatched=False))
        return
    try:
        # cold start: boto3 only once a shadowed request is served on Lambda
        from gateway.upstreams.aws_lambda import lambda_client

        lambda_client(None, None, 5.0).invoke(
            FunctionName=function, InvocationType="Event", Payload=data
        )
    except Exception:
        logger.exception("could not hand the shadow comparison of route %s off", name)
        shadowing.count(name, "dropped")
        emit(shadow_record(name, "dropped", mismatched=False))


def is_comparison(event: Any) -> bool:
    return isinstance(event, dict) and EVENT_KEY in event


def compare_entry(event: dict[str, Any], runtime: Runtime, shadowing: Shadowing) -> dict[str, Any]:
    """In the comparison invocation: check the secret, ask the candidate, compare, record."""
    entry = event[EVENT_KEY]
    secret = os.environ.get(SECRET_ENV) or ""
    given = entry.get("secret") if isinstance(entry, dict) else None
    if not secret or not isinstance(given, str) or not hmac.compare_digest(given, secret):
        logger.warning("a shadow comparison event without the shared secret was refused")
        return {"refused": "secret"}
    route = next((r for r in runtime.config.routes if r.name == entry.get("route")), None)
    if route is None or route.shadow is None:
        return {"refused": "no_shadow"}
    loop = asyncio.new_event_loop()
    try:
        outcome = loop.run_until_complete(_compare(entry, route, runtime, shadowing))
    finally:
        loop.close()
    return {"outcome": outcome}


async def _compare(
    entry: dict[str, Any], route: Any, runtime: Runtime, shadowing: Shadowing
) -> str:
    spec = route.shadow
    raw, primary = entry["request"], entry["primary"]
    request = UpstreamRequest(
        method=raw["method"],
        path=base64.b64decode(raw["path"]),
        query=base64.b64decode(raw["query"]),
        headers=[*_unheaders(raw["headers"]), SHADOW_HEADER],
        body=base64.b64decode(raw["body"]),
        route=route.name,
    )
    answer = Answer(
        int(primary["status"]),
        tuple(_unheaders(primary["headers"])),
        base64.b64decode(primary["body"]),
    )
    upstream = build_upstream(runtime.config.targets[spec.target])
    try:
        candidate = await ask(upstream, request, spec.max_body, spec.timeout)
    except TooLarge:
        shadowing.count(route.name, "skipped")
        emit(shadow_record(route.name, "skipped", mismatched=False))
        return "skipped"
    finally:
        await upstream.aclose()
    line = request_line(
        request.method, request.path.decode("latin-1"), request.query.decode("latin-1")
    )
    result = shadowing.recorder.pair(route.name, spec, Pair(line, answer, candidate), time.time())
    shadowing.copies[(route.name, result.outcome)] += 1
    if result.differences:
        shadowing.mismatches[route.name] += 1
    emit(shadow_record(route.name, result.outcome, mismatched=bool(result.differences)))
    return result.outcome


def _unheaders(headers: list[list[str]]) -> list[tuple[bytes, bytes]]:
    return [(base64.b64decode(name), base64.b64decode(value)) for name, value in headers]
