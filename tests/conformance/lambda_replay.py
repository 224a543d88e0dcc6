"""What a Lambda event promises the upstream, and the check that the upstream got it.

`sent(event)` reads an ALB or HTTP API (2.0) event the way the AWS documentation describes
it, independently of the gateway's own adapters: the method, the raw path, the query as the
client sent it, each header with its repeats, the body, the client and the scheme.
`differences(request, echoed)` compares that with what the echo upstream received and
returns the documented-deviation ids it saw (the proxy's own rewriting of forwarding
headers); anything else that differs fails the test on the spot.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
REWRITTEN = {"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
PROXY_HEADERS = "proxy-forwarding-headers"


@dataclass
class Sent:
    method: str
    raw_path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    client: str | None
    scheme: str
    notes: list[str] = field(default_factory=list)


def sent(event: dict[str, Any]) -> Sent:
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    if "elb" in event.get("requestContext", {}):
        return _alb(event, raw)
    return _http_api(event, raw)


def _alb(event: dict[str, Any], body: bytes) -> Sent:
    if "multiValueHeaders" in event:
        headers = [(k.lower(), v) for k, vs in event["multiValueHeaders"].items() for v in vs]
        params = event.get("multiValueQueryStringParameters") or {}
        pairs = [(k, v) for k, vs in params.items() for v in vs]
    else:
        headers = [(k.lower(), v) for k, v in (event.get("headers") or {}).items()]
        pairs = list((event.get("queryStringParameters") or {}).items())
    forwarded = [v for k, v in headers if k == "x-forwarded-for"]
    client = forwarded[0].rpartition(",")[2].strip() if forwarded else None
    proto = [v for k, v in headers if k == "x-forwarded-proto"]
    return Sent(
        method=event["httpMethod"],
        raw_path=event["path"] or "/",
        query="&".join(f"{k}={v}" if v else k for k, v in pairs),
        headers=headers,
        body=body,
        client=client,
        scheme=proto[0] if proto else "https",
    )


def _http_api(event: dict[str, Any], body: bytes) -> Sent:
    headers = [(k.lower(), v) for k, v in (event.get("headers") or {}).items()]
    if event.get("cookies"):
        headers.append(("cookie", "; ".join(event["cookies"])))
    http = event["requestContext"]["http"]
    proto = [v for k, v in headers if k == "x-forwarded-proto"]
    return Sent(
        method=http["method"],
        raw_path=event["rawPath"] or "/",
        query=event.get("rawQueryString", ""),
        headers=headers,
        body=body,
        client=http.get("sourceIp"),
        scheme=proto[0] if proto else "https",
    )


def _values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key == name]


def differences(request: Sent, echoed: dict[str, Any]) -> list[str]:
    """Deviation ids seen; asserts on any other difference."""
    got = [(name, value) for name, value in echoed["headers"]]
    assert echoed["method"] == request.method
    assert echoed["raw_path"] == request.raw_path
    assert base64.b64decode(echoed["body_base64"]) == request.body
    assert echoed["query"] == request.query
    seen: list[str] = []
    for name in dict(request.headers):
        if name in HOP_BY_HOP or name in REWRITTEN:
            continue
        assert _values(got, name) == _values(request.headers, name), name
    if any(name in HOP_BY_HOP for name, _ in request.headers):
        seen.append(PROXY_HEADERS)
    host = _values(request.headers, "host")
    if host:
        assert _values(got, "x-forwarded-host") == host[-1:]
        seen.append(PROXY_HEADERS)
    assert _values(got, "x-forwarded-proto") == [request.scheme]
    chain = ", ".join(_values(got, "x-forwarded-for")).split(", ")
    if request.client:
        assert chain.count(request.client) == 1, chain
        assert chain[-1] == request.client, chain
    return sorted(set(seen))


def answer_shape(event: dict[str, Any], answer: dict[str, Any]) -> None:
    """The answer uses the event's header mode, a status, and a body encoding flag."""
    assert isinstance(answer["statusCode"], int)
    assert isinstance(answer["isBase64Encoded"], bool)
    if "elb" in event.get("requestContext", {}):
        multi = "multiValueHeaders" in event
        assert ("multiValueHeaders" in answer) is multi
        assert ("headers" in answer) is not multi
        assert answer["statusDescription"].startswith(str(answer["statusCode"]))
    else:
        assert "multiValueHeaders" not in answer
        assert isinstance(answer["headers"], dict)
