"""The ALB wire shape between the gateway and a Lambda target: event out, answer back.

Pure: no boto3 and no I/O, so the exact event a function receives is easy to test.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from gateway.alb import TEXT_TYPES
from gateway.errors import UpstreamUnavailable
from gateway.headers import RawHeaders
from gateway.upstreams.base import UpstreamRequest

TARGET_GROUP_ARN = "arn:aws:elasticloadbalancing:local:000000000000:targetgroup/gateway/0"


def _text(raw: bytes) -> str:
    """A raw path or query as JSON text: UTF-8 as clients send it, latin-1 if it is not."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _query_pairs(query: bytes) -> dict[str, list[str]]:
    """Raw query -> multi-value map, left encoded, as the ALB does (it never decodes)."""
    params: dict[str, list[str]] = {}
    for part in _text(query).split("&"):
        if part:
            key, _, value = part.partition("=")
            params.setdefault(key, []).append(value)
    return params


def _headers_map(headers: RawHeaders) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return grouped


def alb_event(request: UpstreamRequest, body: bytes) -> dict[str, Any]:
    headers = _headers_map(request.headers)
    if "host" not in headers and "x-forwarded-host" in headers:
        # An ALB passes the client's Host on; the proxy moved it to X-Forwarded-Host.
        headers["host"] = headers["x-forwarded-host"][-1:]
    content_type = (headers.get("content-type") or [""])[-1]
    is_text = content_type.startswith(TEXT_TYPES) and "content-encoding" not in headers
    text: str | None = None
    if is_text:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return {
        "requestContext": {"elb": {"targetGroupArn": TARGET_GROUP_ARN}},
        "httpMethod": request.method,
        "path": _text(request.path),
        "multiValueQueryStringParameters": _query_pairs(request.query),
        "multiValueHeaders": headers,
        "body": text if text is not None else base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": text is None and bool(body),
    }


def parse_answer(
    answer: Mapping[str, Any], function: str, target: str
) -> tuple[int, RawHeaders, bytes]:
    """An ALB-shaped answer -> (status, raw headers, body); anything else is a 502."""

    def invalid(what: str) -> UpstreamUnavailable:
        return UpstreamUnavailable(f"function {function!r} answered {what}", target=target)

    status = answer.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise invalid("without a valid statusCode")
    multi = answer.get("multiValueHeaders") or {}
    single = answer.get("headers") or {}
    if not isinstance(multi, Mapping) or not isinstance(single, Mapping):
        raise invalid("headers that are not an object")
    try:
        headers = _answer_headers(multi, single)
    except UnicodeEncodeError as exc:
        raise invalid("a header that is not latin-1") from exc
    body = answer.get("body") or ""
    if not isinstance(body, str):
        raise invalid("a non-string body")
    if not answer.get("isBase64Encoded"):
        return status, headers, body.encode("utf-8")
    try:
        # Whitespace (MIME line breaks) is fine; anything else outside base64 is not.
        return status, headers, base64.b64decode("".join(body.split()), validate=True)
    except binascii.Error as exc:
        raise invalid("a body marked isBase64Encoded that is not base64") from exc


def _answer_headers(multi: Mapping[str, Any], single: Mapping[str, Any]) -> RawHeaders:
    """Both header maps, multi-value first; a name in both (any case) comes from multi only."""
    headers: RawHeaders = []
    for name, values in multi.items():
        for value in values if isinstance(values, list) else [values]:
            headers.append((str(name).lower().encode("latin-1"), str(value).encode("latin-1")))
    taken = {str(name).lower() for name in multi}
    for name, value in single.items():
        if str(name).lower() not in taken:
            headers.append((str(name).lower().encode("latin-1"), str(value).encode("latin-1")))
    return headers
