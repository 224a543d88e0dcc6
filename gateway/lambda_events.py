"""ALB events for Mangum, kept byte-exact for a proxy.

Mangum's stock ALB handler re-encodes the query string (so `%41` reaches the upstream as
`A`), drops the raw path, and takes the whole X-Forwarded-For list as the client. This one
meets Mangum's handler protocol but keeps what the ALB sent: the ALB does not decode the
path or query, so both go on as they came; the client is the address the ALB appended last.
The answer uses the event's own header mode, as the ALB requires.
"""

from __future__ import annotations

import base64
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from mangum.types import LambdaConfig, LambdaContext, LambdaEvent, Response, Scope

TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml")


class ALBEvent:
    @classmethod
    def infer(cls, event: LambdaEvent, context: LambdaContext, config: LambdaConfig) -> bool:
        return "elb" in event.get("requestContext", {})

    def __init__(self, event: LambdaEvent, context: LambdaContext, config: LambdaConfig) -> None:
        self.event = event
        self.context = context
        self.config = config
        self.multi_value = "multiValueHeaders" in event

    @property
    def body(self) -> bytes:
        body = self.event.get("body") or ""
        if self.event.get("isBase64Encoded"):
            return base64.b64decode(body)
        return body.encode("utf-8") if isinstance(body, str) else bytes(body)

    def _headers(self) -> list[tuple[bytes, bytes]]:
        if self.multi_value:
            return [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, values in (self.event.get("multiValueHeaders") or {}).items()
                for value in values
            ]
        return [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (self.event.get("headers") or {}).items()
        ]

    def _query(self) -> bytes:
        if self.multi_value:
            params = self.event.get("multiValueQueryStringParameters") or {}
            pairs = [(key, value) for key, values in params.items() for value in values]
        else:
            pairs = list((self.event.get("queryStringParameters") or {}).items())
        return "&".join(f"{k}={v}" if v != "" else k for k, v in pairs).encode("latin-1")

    @property
    def scope(self) -> Scope:
        headers, client = _split_client(self._headers())
        found = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers}
        raw_path = self.event.get("path") or "/"
        host = found.get("host", "")
        port = int(found.get("x-forwarded-port", "443") or 443)
        return {
            "type": "http",
            "method": self.event["httpMethod"],
            "http_version": "1.1",
            "headers": headers,
            "path": unquote(raw_path),
            "raw_path": raw_path.encode("latin-1"),
            "root_path": "",
            "scheme": found.get("x-forwarded-proto", "https"),
            "query_string": self._query(),
            "server": (host.split(":")[0], port),
            "client": (client, 0) if client else None,
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "aws.event": self.event,
            "aws.context": self.context,
        }

    def __call__(self, response: Response) -> dict[str, Any]:
        grouped: dict[str, list[str]] = {}
        for name, value in response["headers"]:
            grouped.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        body, is_base64 = encode_body(response["body"], grouped)
        out: dict[str, Any] = {
            "statusCode": response["status"],
            "statusDescription": status_description(response["status"]),
            "body": body,
            "isBase64Encoded": is_base64,
        }
        if self.multi_value:
            out["multiValueHeaders"] = grouped
        else:
            out["headers"] = {name: values[-1] for name, values in grouped.items()}
        return out


def _split_client(
    headers: list[tuple[bytes, bytes]],
) -> tuple[list[tuple[bytes, bytes]], str]:
    """Take the address the ALB appended to X-Forwarded-For as the client.

    The proxy appends its peer to X-Forwarded-For; here the peer is the ALB's client, so it
    comes off the header to go back on, and the upstream sees exactly what the ALB sent.
    """
    out: list[tuple[bytes, bytes]] = []
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
