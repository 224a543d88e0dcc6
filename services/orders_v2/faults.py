"""Fault injection for canary tests: a share of failures, added latency, a dropped field.

Precedence per field: runtime override (`PUT /_fault`) > environment
(`ORDERS_V2_FAIL_RATE`, `ORDERS_V2_DELAY_MS`, read on every request) > 0.
`PUT /_fault {"drop_field": "status"}` removes that key wherever it appears in a JSON answer
(a subtly wrong candidate, for shadow parity); only set at run time.
"""

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

FAIL_RATE_ENV = "ORDERS_V2_FAIL_RATE"
DELAY_MS_ENV = "ORDERS_V2_DELAY_MS"
MAX_DELAY_MS = 60_000

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FaultSettings:
    fail_rate: float = 0.0
    delay_ms: float = 0.0
    drop_field: str | None = None


class FaultUpdate(BaseModel):
    """A `PUT /_fault` body: a field left out falls back to the environment."""

    fail_rate: float | None = Field(default=None, ge=0, le=1)
    delay_ms: float | None = Field(default=None, ge=0, le=MAX_DELAY_MS)
    drop_field: str | None = Field(default=None, min_length=1, max_length=100)


class FaultInjector:
    """The one piece of shared state; a lock guards the override against threadpool callers."""

    def __init__(
        self,
        environ: Mapping[str, str] = os.environ,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._environ = environ
        self._rng = rng
        self._lock = threading.Lock()
        self._override = FaultUpdate()

    def settings(self) -> FaultSettings:
        with self._lock:
            override = self._override
        fail_rate = override.fail_rate
        delay_ms = override.delay_ms
        return FaultSettings(
            fail_rate=fail_rate if fail_rate is not None else self._env(FAIL_RATE_ENV, 1.0),
            delay_ms=delay_ms if delay_ms is not None else self._env(DELAY_MS_ENV, MAX_DELAY_MS),
            drop_field=override.drop_field,
        )

    def override(self, update: FaultUpdate) -> FaultSettings:
        with self._lock:
            self._override = update
        return self.settings()

    def should_fail(self, settings: FaultSettings) -> bool:
        return settings.fail_rate > 0 and self._rng() < settings.fail_rate

    def _env(self, name: str, upper: float) -> float:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return 0.0
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not 0 <= value <= upper:
            logger.warning("ignoring %s=%r: expected a number in [0, %s]", name, raw, upper)
            return 0.0
        return value


def fault_router(injector: FaultInjector) -> APIRouter:
    router = APIRouter(prefix="/_fault")

    @router.get("")
    async def read_faults() -> dict[str, Any]:
        return _as_json(injector.settings())

    @router.put("")
    async def set_faults(update: FaultUpdate) -> dict[str, Any]:
        return _as_json(injector.override(update))

    @router.delete("")
    async def clear_faults() -> dict[str, Any]:
        return _as_json(injector.override(FaultUpdate()))

    return router


def _as_json(settings: FaultSettings) -> dict[str, Any]:
    shown: dict[str, Any] = {"fail_rate": settings.fail_rate, "delay_ms": settings.delay_ms}
    if settings.drop_field:
        shown["drop_field"] = settings.drop_field
    return shown


class FaultInjection:
    """Delay, then maybe fail, every request under `prefix`; `/health` and `/_fault` stay clean."""

    def __init__(self, app: ASGIApp, injector: FaultInjector, prefix: str = "/api/") -> None:
        self.app = app
        self.injector = injector
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        settings = self.injector.settings()
        if settings.delay_ms:
            await asyncio.sleep(settings.delay_ms / 1000)
        if not self.injector.should_fail(settings):
            if settings.drop_field:
                send = _dropping(send, settings.drop_field)
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "injected"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _dropping(send: Send, name: str) -> Send:
    """`send`, with the key `name` removed from a JSON answer wherever it appears."""
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def dropping(message: Any) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        with contextlib.suppress(ValueError):
            body = json.dumps(_without(json.loads(body), name)).encode()
        headers = [(k, v) for k, v in start.get("headers", ()) if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return dropping


def _without(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, name) for k, v in value.items() if k != name}
    if isinstance(value, list):
        return [_without(v, name) for v in value]
    return value
