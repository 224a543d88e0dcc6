"""The ALB wire shape between the gateway and a Lambda target: event out, answer back.

Pure: no boto3 and no I/O, so the exact event a function receives is easy to test.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from gateway.errors import UpstreamUnavailable
from gateway.headers import RawHeaders
from gateway.lambda_events import TEXT_TYPES
from gateway.upstreams.base import UpstreamRequest

TARGET_GROUP_ARN = "arn:aws:elasticloadbalancing:local:000000000000:targetgroup/gateway/0"


def _query_pairs(query: bytes) -> dict[str, list[str]]:
    """Raw query -> multi-value map, left encoded, as the ALB does (it never decodes)."""
    params: dict[str, list[str]] = {}
    for part in query.decode("latin-1").split("&"):
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
        "path": request.path.decode("latin-1"),
        "multiValueQueryStringParameters": _query_pairs(request.query),
        "multiValueHeaders": headers,
        "body": text if text is not None else base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": text is None and bool(body),
    }


def parse_answer(
    answer: Mapping[str, Any], function: str, target: str
) -> tuple[int, RawHeaders, bytes]:
    """An ALB-shaped answer -> (status, raw headers, body); anything else is a 502."""
    status = answer.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise UpstreamUnavailable(
            f"function {function!r} answered without a valid statusCode", target=target
        )
    headers: RawHeaders = []
    multi = answer.get("multiValueHeaders") or {}
    single = answer.get("headers") or {}
    for name, values in multi.items():
        for value in values if isinstance(values, list) else [values]:
            headers.append((str(name).lower().encode("latin-1"), str(value).encode("latin-1")))
    for name, value in single.items():
        if name not in multi:
            headers.append((str(name).lower().encode("latin-1"), str(value).encode("latin-1")))
    body = answer.get("body") or ""
    if not isinstance(body, str):
        raise UpstreamUnavailable(
            f"function {function!r} answered a non-string body", target=target
        )
    content = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode("utf-8")
    return status, headers, content
