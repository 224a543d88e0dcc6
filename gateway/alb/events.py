"""The Lambda entry's two wire shapes, byte-exact for a proxy: ALB events and API Gateway
HTTP API (payload 2.0) events, which Lambda function URLs send too.

Each adapter reads its event into an ASGI scope and body (`request`, which raises
`EventRefused` or `BrokenEvent` from `gateway.alb.fields` on a malformed event) and maps
an answer back into the shape its caller requires (`answer`), never raising.

ALB: the ALB does not decode the path or query, so both go on as they came; the client is
the address the ALB appended last to X-Forwarded-For; the answer uses the event's own header
mode. HTTP API: `rawPath` and `rawQueryString` are what the client sent (API Gateway decodes
neither; `requestContext.http.path` is decoded and is not used); the client is `sourceIp`,
which API Gateway also appended to X-Forwarded-For, so it comes off there (the proxy appends
its client once).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import unquote

from gateway.alb.fields import (
    BrokenEvent,
    ResponseTooLarge,
    body_bytes,
    header_list,
    kind,
    mapping,
    method,
    multi_values,
    path_bytes,
    single_values,
    text,
    url_bytes,
)
from gateway.asgi import Scope
from gateway.headers import RawHeaders

TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml")
# The ALB's cap on a Lambda answer is "1 MB" of JSON: read the stricter way, 10**6 bytes.
ALB_RESPONSE_LIMIT = 1_000_000
# Lambda's synchronous response cap, which is what bounds an HTTP API or function URL answer.
HTTP_API_RESPONSE_LIMIT = 6 * 1024 * 1024


class ALBEvent:
    limit: ClassVar[int] = ALB_RESPONSE_LIMIT
    limit_name: ClassVar[str] = "the ALB's 1 MB (1000000 bytes) limit on a Lambda answer"

    def __init__(self, event: Mapping[str, Any], context: Any) -> None:
        self.event = event
        self.context = context
        self.multi_value = "multiValueHeaders" in event

    def request(self) -> tuple[Scope, bytes]:
        event = self.event
        if "elb" not in mapping(event, "requestContext"):
            raise BrokenEvent("requestContext.elb is missing: not an ALB event")
        verb = method(event.get("httpMethod"), "httpMethod")
        raw_path = event.get("path", "")
        if not isinstance(raw_path, str):
            raise BrokenEvent(f"path is {kind(raw_path)}, not a string")
        if self.multi_value:
            headers = header_list(multi_values(event, "multiValueHeaders"))
            params = multi_values(event, "multiValueQueryStringParameters")
        else:
            headers = header_list(single_values(event, "headers"))
            params = single_values(event, "queryStringParameters")
        query = "&".join(f"{k}={v}" if v != "" else k for k, v in params)
        headers, client = _split_client(headers)
        body = body_bytes(event)
        scope = http_scope(self, verb, path_bytes(raw_path, "path"), url_bytes(query, "query"))
        scope["headers"] = headers
        scope["client"] = (client, 0) if client else None
        return _with_server(scope), body

    def answer(self, status: int, headers: RawHeaders, body: bytes) -> dict[str, Any]:
        grouped = _grouped(headers)
        text_body, is_base64 = encode_body(body, grouped)
        out: dict[str, Any] = {
            "statusCode": status,
            "statusDescription": status_description(status),
            "body": text_body,
            "isBase64Encoded": is_base64,
        }
        if self.multi_value:
            out["multiValueHeaders"] = grouped
        else:
            out["headers"] = single_value_headers(grouped)
        return out


class HttpApiEvent:
    limit: ClassVar[int] = HTTP_API_RESPONSE_LIMIT
    limit_name: ClassVar[str] = "Lambda's 6 MB (6291456 bytes) limit on a response"

    def __init__(self, event: Mapping[str, Any], context: Any) -> None:
        self.event = event
        self.context = context

    def request(self) -> tuple[Scope, bytes]:
        event = self.event
        context = mapping(event, "requestContext")
        http = mapping(context, "http", "requestContext.")
        verb = method(http.get("method"), "requestContext.http.method")
        raw_path = text(event, "rawPath")
        query = text(event, "rawQueryString", default="")
        pairs = single_values(event, "headers")
        cookies = event.get("cookies") or []
        if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
            raise BrokenEvent("cookies is not a list of strings")
        if cookies:
            pairs.append(("cookie", "; ".join(cookies)))
        source = http.get("sourceIp")
        client = source if isinstance(source, str) and source else None
        headers = _unappend_client(header_list(pairs), client)
        body = body_bytes(event)
        scope = http_scope(self, verb, path_bytes(raw_path, "rawPath"), url_bytes(query, "query"))
        scope["headers"] = headers
        scope["client"] = (client, 0) if client else None
        return _with_server(scope), body

    def answer(self, status: int, headers: RawHeaders, body: bytes) -> dict[str, Any]:
        grouped = _grouped(headers)
        cookies = grouped.pop("set-cookie", [])
        text_body, is_base64 = encode_body(body, grouped)
        out: dict[str, Any] = {
            "statusCode": status,
            "headers": {name: ", ".join(values) for name, values in grouped.items()},
            "body": text_body,
            "isBase64Encoded": is_base64,
        }
        if cookies:
            out["cookies"] = cookies
        return out


Adapter = ALBEvent | HttpApiEvent


def adapter_for(event: object, context: Any) -> Adapter | None:
    """The adapter for an event: ALB, HTTP API (2.0), or None for API Gateway's REST
    events (left to Mangum). Anything else gets an HTTP API shaped adapter, whose
    `request` then says what is wrong."""
    if not isinstance(event, Mapping):
        return HttpApiEvent({}, context)
    request_context = event.get("requestContext")
    if isinstance(request_context, Mapping) and "elb" in request_context:
        return ALBEvent(event, context)
    if event.get("version") == "2.0":
        return HttpApiEvent(event, context)
    if "resource" in event and isinstance(request_context, Mapping):
        return None
    if "httpMethod" in event or "multiValueHeaders" in event:
        # An ALB event missing its requestContext: answered in its shape, as broken.
        return ALBEvent(event, context)
    return HttpApiEvent(event, context)


def http_scope(adapter: Adapter, verb: str, raw_path: bytes, query: bytes) -> Scope:
    return {
        "type": "http",
        "method": verb,
        "http_version": "1.1",
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": query,
        "asgi": {"version": "3.0", "spec_version": "2.0"},
        "aws.event": adapter.event,
        "aws.context": adapter.context,
    }


def _with_server(scope: Scope) -> Scope:
    """Scheme and server from the forwarding headers, with sane defaults for odd values."""
    found = dict(scope["headers"])
    proto = found.get(b"x-forwarded-proto", b"https").decode("latin-1").lower()
    scheme = proto if proto in ("http", "https") else "https"
    port_text = found.get(b"x-forwarded-port", b"")
    port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else 0
    if not 0 < port < 65536:
        port = 443 if scheme == "https" else 80
    host = found.get(b"host", b"").decode("latin-1").split(":")[0]
    scope["scheme"] = scheme
    scope["server"] = (host, port)
    return scope


def _split_client(headers: RawHeaders) -> tuple[RawHeaders, str]:
    """Take the address the ALB appended to X-Forwarded-For as the client.

    The proxy appends its peer to X-Forwarded-For; here the peer is the ALB's client, so it
    comes off the header to go back on, and the upstream sees exactly what the ALB sent.
    """
    out: RawHeaders = []
    client = ""
    for name, value in headers:
        if name == b"x-forwarded-for" and not client:
            rest, _, last = value.decode("latin-1").rpartition(",")
            client = last.strip()
            if rest.strip():
                out.append((name, rest.strip().encode("latin-1")))
        else:
            out.append((name, value))
    return out, client


def _unappend_client(headers: RawHeaders, client: str | None) -> RawHeaders:
    """API Gateway appends `sourceIp` to X-Forwarded-For; the proxy appends it again."""
    if client is None:
        return headers
    out: RawHeaders = []
    for name, value in headers:
        if name == b"x-forwarded-for":
            rest, _, last = value.decode("latin-1").rpartition(",")
            if last.strip() == client:
                if rest.strip():
                    out.append((name, rest.strip().encode("latin-1")))
                continue
        out.append((name, value))
    return out


def _grouped(headers: RawHeaders) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return grouped


def single_value_headers(grouped: dict[str, list[str]]) -> dict[str, str]:
    """One value per name, as an ALB without multi-value headers takes them: repeats joined
    with ", ", but each Set-Cookie kept under its own casing of the name (set-cookie,
    Set-cookie, sEt-cookie, ...: the ALB sends each as Set-Cookie), as Mangum does."""
    out: dict[str, str] = {}
    for name, values in grouped.items():
        if name == "set-cookie":
            for index, value in enumerate(values):
                out[casing(name, index)] = value
        else:
            out[name] = ", ".join(values)
    return out


def casing(name: str, index: int) -> str:
    """The index-th casing of `name`, its first letter varying fastest (Mangum's order)."""
    chars = list(name)
    letters = [i for i, char in enumerate(chars) if char.lower() != char.upper()]
    if index >= 2 ** len(letters):
        raise ValueError(f"{name!r} has no {index}-th casing")
    for bit, position in enumerate(letters):
        if index >> bit & 1:
            chars[position] = chars[position].upper()
    return "".join(chars)


def status_description(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def encode_body(body: bytes, headers: dict[str, list[str]]) -> tuple[str, bool]:
    """Text stays text; anything else, or anything content-encoded, goes base64."""
    content_type = (headers.get("content-type") or [""])[-1]
    if body and "content-encoding" not in headers and content_type.startswith(TEXT_TYPES):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    if not body:
        return "", False
    return base64.b64encode(body).decode("ascii"), True


def sized_answer(adapter: Adapter, status: int, headers: RawHeaders, body: bytes) -> dict[str, Any]:
    """The adapter's answer, or ResponseTooLarge when its JSON is over the caller's limit
    (the ALB's 1 MB, Lambda's 6 MB for HTTP API): never an answer the caller would drop."""
    answer = adapter.answer(status, headers, body)
    size = len(json.dumps(answer))
    if size > adapter.limit:
        raise ResponseTooLarge(f"the answer is {size} bytes of JSON, over {adapter.limit_name}")
    return answer
