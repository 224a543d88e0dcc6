"""A real orders service for the shadow tests: answers like the legacy (a timestamp and a
random request id stamped per answer), or with one of a candidate's faults."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.asgi import Receive, Scope, Send


@dataclass
class OrderService:
    """mode: legacy | fixed | drops | tenth | reorder | slow."""

    mode: str = "legacy"
    delay: float = 2.0
    hits: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    events: list[str] | None = None
    counter: Iterator[int] = field(default_factory=itertools.count)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.hits.append((scope["method"], headers))
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
            if self.events is not None:
                self.events.append("candidate answered")
        body = json.dumps(self.order(next(self.counter))).encode()
        head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": body})

    def order(self, i: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": 7,
            "status": "open",
            "total": 30,
            "items": [{"sku": "a-1", "price": 10}, {"sku": "b-2", "price": 20}],
            "meta": {"request_id": f"{random.getrandbits(64):016x}", "at": time.time()},
        }
        if self.mode in ("fixed", "slow"):
            del body["meta"]
        elif self.mode == "drops":
            del body["status"]
        elif self.mode == "tenth" and i % 10 == 0:
            body["total"] = 0
        elif self.mode == "reorder":
            body["items"].reverse()
        return body


def parity(gateway: str, route: str) -> dict[str, Any]:
    answer = httpx.get(f"{gateway}/_gateway/parity", params={"route": route}, timeout=5)
    assert answer.status_code == 200, answer.text
    entry: dict[str, Any] = answer.json()["routes"][0]
    return entry


def settled(gateway: str, route: str, copies: int, within: float = 10.0) -> dict[str, Any]:
    """The route's report once `copies` copies are accounted for (bounded in time)."""
    deadline = time.monotonic() + within
    while True:
        entry = parity(gateway, route)
        counts = entry["counts"]
        done = sum(counts[k] for k in ("compared", "no_answer", "skipped", "dropped"))
        if done >= copies or time.monotonic() > deadline:
            return entry
        time.sleep(0.02)
