"""An upstream for protection tests that counts what reaches it and fails on request.

GET|POST /hit/KEY?fail=N&status=S  the first N hits on KEY answer S (default 503), then 200
GET      /slow/KEY?seconds=F       holds the request F seconds (in-flight count tracked)
GET      /stats                    {"hits": {KEY: n}, "methods": {KEY: [..]}, "max_in_flight": n}
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qs

from gateway.asgi import Receive, Scope, Send


class Faulty:
    def __init__(self) -> None:
        self.hits: defaultdict[str, int] = defaultdict(int)
        self.methods: defaultdict[str, list[str]] = defaultdict(list)
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        parts = scope["path"].strip("/").split("/")
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        status, body = await self._answer(parts, query, scope["method"])
        payload = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"x-served-by", b"faulty")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _answer(self, parts: list[str], query: dict[str, str], method: str) -> Any:
        if parts[0] == "stats":
            return 200, {
                "hits": self.hits,
                "methods": self.methods,
                "max_in_flight": self.max_in_flight,
            }
        key = parts[-1]
        self.hits[key] += 1
        self.methods[key].append(method)
        if parts[0] == "slow":
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(float(query.get("seconds", "0.2")))
            finally:
                self.in_flight -= 1
            return 200, {"slow": key}
        if self.hits[key] <= int(query.get("fail", "0")):
            return int(query.get("status", "503")), {"failing": key}
        return 200, {"ok": key, "hit": self.hits[key]}
