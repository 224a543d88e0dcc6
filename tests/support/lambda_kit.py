"""The Lambda entry under test: `handler` in a fresh interpreter, in front of real upstreams.

`answering_app` is the upstream (uvicorn on loopback): `/echo/...` answers with what it
received, byte-exact (method, raw path, query, every header with its repeats, body);
`/chunked/N` streams N bytes with no Content-Length (so chunked), `/sized/N` sends N bytes
with one; `/repeated` answers repeated headers; `/mangum/<table>/<id>` answers what Mangum's
test app answers for that vendored case. A raw TCP upstream answers with no length at all,
the body delimited by closing the connection. Every answer body is a fixed byte pattern.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.asgi import Receive, Scope, Send
from tests.support.lambda_runner import LambdaProcess, lambda_process
from tests.support.servers import raw_tcp_upstream, serve_in_thread, write_config

MANGUM = Path(__file__).resolve().parents[1] / "conformance" / "vendor" / "mangum"


def pattern(size: int) -> bytes:
    """`size` bytes that are not all alike, so a reordered or shifted body is seen."""
    block = bytes(range(256))
    return (block * (size // 256 + 1))[:size]


async def answering_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    parts = scope["path"].strip("/").split("/")
    if parts[0] == "chunked":
        size = int(parts[1])
        await send({"type": "http.response.start", "status": 200, "headers": _binary()})
        data = pattern(size)
        for start in range(0, size, 65536):
            chunk = data[start : start + 65536]
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif parts[0] == "sized":
        size = int(parts[1])
        headers = [*_binary(), (b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": pattern(size)})
    elif parts[0] == "repeated":
        headers = [
            (b"content-type", b"text/plain"),
            (b"set-cookie", b"a=1; Path=/"),
            (b"vary", b"Accept"),
            (b"set-cookie", b"b=2; Secure"),
            (b"vary", b"Origin"),
            (b"set-cookie", b"c=3"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"repeated"})
    elif parts[0] == "mangum":
        await _mangum_answer(send, parts[1], parts[2])
    else:
        await _echo(scope, bytes(body), send)


def _binary() -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/octet-stream")]


async def _echo(scope: Scope, body: bytes, send: Send) -> None:
    found = {
        "method": scope["method"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query": scope["query_string"].decode("latin-1"),
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
        "body_base64": base64.b64encode(body).decode("ascii"),
    }
    data = json.dumps(found).encode()
    headers = [(b"content-type", b"application/json"), (b"x-echo", b"1")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _mangum_answer(send: Send, table: str, case_id: str) -> None:
    cases = json.loads((MANGUM / f"{table}.json").read_text())["response_cases"]
    case = next(case for case in cases if case["id"] == case_id)
    app = case["app"]
    headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in app["headers"]]
    await send({"type": "http.response.start", "status": app["status"], "headers": headers})
    await send({"type": "http.response.body", "body": base64.b64decode(app["body_base64"])})


def unsized_upstream(conn: socket.socket) -> None:
    """HTTP/1.1 with neither Content-Length nor chunking: the body ends when the socket does."""
    conn.settimeout(5)
    try:
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(65536)
            if not data:
                return
            head += data
        size = int(head.split(b" ")[1].rsplit(b"/", 1)[-1] or b"0")
        answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\r\n"
        conn.sendall(answer + pattern(size))
    except (OSError, ValueError):
        pass
    finally:
        conn.close()


CONFIG = """
targets:
  app: {{url: "{app}"}}
  raw: {{url: "{raw}", retry: {{attempts: 1}}}}
routes:
  - {{name: unsized, path: /unsized, target: raw}}
  - {{name: app, path: /, target: app}}
"""


@contextmanager
def lambda_entry(directory: Path, http: str = "auto") -> Iterator[LambdaProcess]:
    """The handler in a fresh interpreter, routing /unsized/N to the raw upstream and
    everything else to `answering_app`."""
    with (
        serve_in_thread(answering_app, lifespan="off", http=http) as app_url,
        raw_tcp_upstream(unsized_upstream) as raw_url,
    ):
        config = write_config(directory, CONFIG.format(app=app_url, raw=raw_url))
        with lambda_process(config) as entry:
            yield entry


def alb_event(
    method: str = "GET",
    path: str = "/echo/x",
    *,
    headers: dict[str, list[str]] | None = None,
    query: dict[str, list[str]] | None = None,
    body: bytes = b"",
    multi: bool = True,
) -> dict[str, Any]:
    """An ALB event as the ALB sends it, in multi-value or single-value (last value) mode."""
    headers = headers or {"host": ["gw.example.com"], "x-forwarded-for": ["198.51.100.7"]}
    query = query or {}
    event: dict[str, Any] = {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:tg"}},
        "httpMethod": method,
        "path": path,
        "body": base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": True,
    }
    if multi:
        event["multiValueHeaders"] = headers
        event["multiValueQueryStringParameters"] = query
    else:
        event["headers"] = {name: values[-1] for name, values in headers.items()}
        event["queryStringParameters"] = {name: values[-1] for name, values in query.items()}
    return event


def http_api_event(
    method: str = "GET",
    raw_path: str = "/echo/x",
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    source_ip: str = "198.51.100.7",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event; function URLs send the same shape."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": headers or {"host": "api.example.com", "x-forwarded-for": source_ip},
        "requestContext": {
            "http": {"method": method, "path": raw_path, "sourceIp": source_ip},
            "domainName": "api.example.com",
            "stage": "$default",
        },
        "body": base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": True,
    }


def answer_body(answer: dict[str, Any]) -> bytes:
    body: str = answer.get("body") or ""
    if answer.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8")


def echoed(answer: dict[str, Any]) -> dict[str, Any]:
    """What the echo upstream received, from the handler's answer."""
    if answer["statusCode"] != 200:
        raise AssertionError(f"not echoed: {answer['statusCode']} {answer_body(answer)!r}")
    found: dict[str, Any] = json.loads(answer_body(answer))
    return found


def error_code(answer: dict[str, Any]) -> str:
    found: str = json.loads(answer_body(answer))["error"]
    return found
