"""A slow loopback upstream that records its own in-flight maximum, and plain HTTP calls."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from gateway.asgi import Receive, Scope, Send

SLOW = 0.4
"""Seconds /slow and /hold take: long enough to pile requests up behind a limit of 5."""


@dataclass
class SlowUpstream:
    """/slow and /hold sleep (counted in flight per path), /fail answers 503, else 200."""

    in_flight: dict[str, int] = field(default_factory=dict)
    most: dict[str, int] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        kind = scope["path"].strip("/").split("/")[0]
        self.hits[kind] = self.hits.get(kind, 0) + 1
        status = 503 if kind == "fail" else 200
        if kind in ("slow", "hold"):
            self.in_flight[kind] = self.in_flight.get(kind, 0) + 1
            self.most[kind] = max(self.most.get(kind, 0), self.in_flight[kind])
            try:
                await asyncio.sleep(SLOW * (2 if kind == "hold" else 1))
            finally:
                self.in_flight[kind] -= 1
        body = json.dumps({"kind": kind}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    error: str | None
    retry_after: str | None


def get(url: str, timeout: float = 10.0) -> Answer:
    """One GET; the status, the gateway's error code and Retry-After, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return Answer(reply.status, None, reply.headers.get("retry-after"))
    except urllib.error.HTTPError as refused:
        body = refused.read()
        try:
            error = json.loads(body).get("error")
        except ValueError:
            error = None
        return Answer(refused.code, error, refused.headers.get("retry-after"))
