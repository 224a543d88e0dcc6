"""Shared pieces of the admission attack tests: tables, raw requests (the echoing upstream is
conftest.py's fixture)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from tests.support import rawhttp
from tests.support.servers import serve_in_thread, write_config

PARSERS = [pytest.param("h11", id="h11"), pytest.param("httptools", id="httptools")]


def serve_table(tmp_path: Path, text: str, http: str = "auto") -> Any:
    """A context manager serving a gateway on `text` under uvicorn's `http` parser."""
    return serve_in_thread(create_app(write_config(tmp_path, text)), http=http)


def send(
    url: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
) -> rawhttp.RawResponse:
    """One byte-exact request; Host and Connection: close are added first."""
    host = url.removeprefix("http://")
    wire = [("Host", host), ("Connection", "close"), *headers]
    if body:
        wire.append(("Content-Length", str(len(body))))
    return rawhttp.request(url, rawhttp.build(method, target, list(wire), body))


def echoed_headers(body: bytes | str) -> list[tuple[str, str]]:
    """The headers the echo upstream received, from its JSON answer."""
    found: dict[str, Any] = json.loads(body)
    return [(name, value) for name, value in found["headers"]]


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key == name]


def alb_event(
    path: str, headers: dict[str, list[str]], method: str = "GET", body: str = ""
) -> dict[str, Any]:
    """An ALB event in multi-value mode, as the ALB sends it to the Lambda entry."""
    return {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:tg"}},
        "httpMethod": method,
        "path": path,
        "multiValueQueryStringParameters": {},
        "multiValueHeaders": {
            "host": ["gateway.example.com"],
            "x-forwarded-port": ["443"],
            "x-forwarded-proto": ["https"],
            **headers,
        },
        "body": base64.b64encode(body.encode()).decode() if body else "",
        "isBase64Encoded": bool(body),
    }


def answer_body(answer: dict[str, Any]) -> bytes:
    body = answer.get("body") or ""
    if answer.get("isBase64Encoded"):
        return base64.b64decode(body)
    return str(body).encode()
