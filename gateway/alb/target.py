"""The ALB wire shape the other way: the event a Lambda *target* receives, and its answer.

The gateway invokes a Lambda target with the event an ALB would send it, and reads the
answer an ALB would read; the text-or-base64 rule for bodies is `gateway.alb.events`'s, both ways.
Pure: no boto3, no I/O, no upstream types, so the exact event a function receives is easy
to test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.alb.events import encode_body
from gateway.alb.fields import base64_body
from gateway.errors import UpstreamUnavailable
from gateway.headers import RawHeaders

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


def target_event(
    method: str, path: bytes, query: bytes, headers: RawHeaders, body: bytes
) -> dict[str, Any]:
    """The multi-value ALB event for a request forwarded to a Lambda target."""
    grouped = _headers_map(headers)
    if "host" not in grouped and "x-forwarded-host" in grouped:
        # An ALB passes the client's Host on; the proxy moved it to X-Forwarded-Host.
        grouped["host"] = grouped["x-forwarded-host"][-1:]
    text, is_base64 = encode_body(body, grouped)
    return {
        "requestContext": {"elb": {"targetGroupArn": TARGET_GROUP_ARN}},
        "httpMethod": method,
        "path": _text(path),
        "multiValueQueryStringParameters": _query_pairs(query),
        "multiValueHeaders": grouped,
        "body": text,
        "isBase64Encoded": is_base64,
    }


def target_answer(
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
        return status, headers, base64_body(body)
    except ValueError as exc:
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
