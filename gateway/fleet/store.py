"""One Redis client per process, every call bounded, every failure one error.

Built once (on Lambda at cold start) and closed at shutdown. Measured against a SIGSTOPped
redis-server: without a socket timeout a call waits for ever; `socket_timeout=50ms` alone ends a
stalled read (51 ms) and a stalled new connection (52 ms), but per attempt, so redis-py's
retries or a NOSCRIPT reload (three commands) would multiply it. So each call runs under
`asyncio.timeout(settings.timeout)`, the one bound over the whole call, with the socket
timeouts as a backstop and the client's own retries off.

Availability is tracked as transitions: the first failure after a success logs once and the
first success after failures logs once; every failed call counts in `unavailable_total`. A
later call simply tries again, so a Redis that comes back is used again without a restart.
Scripts go through EVALSHA and are loaded again on NOSCRIPT (after a Redis restart).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from gateway.config.model import StateSettings
from gateway.errors import GatewayError

log = logging.getLogger("gateway.fleet")

MAX_CONNECTIONS = 64
"""Per process: more concurrent Redis calls than this queue for a connection."""
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
"""Upper bounds in seconds of the Redis call latency histogram (Prometheus `le`)."""


class StateUnavailable(GatewayError):
    """The shared state could not be read or written within `timeout`."""

    status_code, code = 503, "state_unavailable"


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """What the metrics module renders: gateway_state_unavailable_total and the histogram."""

    available: bool
    unavailable_total: int
    transitions: int
    latency_buckets: tuple[tuple[float, int], ...]  # (le, cumulative count); +Inf is `calls`
    latency_sum: float
    calls: int


class Script:
    """A Lua script run by SHA; `StateStore.run` loads it again when Redis forgot it."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # what SCRIPT LOAD would answer


class StateStore:
    unavailable_error: ClassVar[type[StateUnavailable]] = StateUnavailable

    def __init__(self, settings: StateSettings, client: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self.timeout = settings.timeout
        self.prefix = settings.prefix
        self._client = client if client is not None else _client(settings)
        self._available = True
        self._unavailable_total = 0
        self._transitions = 0
        self._bucket_counts = [0] * len(LATENCY_BUCKETS)
        self._latency_sum = 0.0
        self._calls = 0

    @property
    def available(self) -> bool:
        """As of the last call."""
        return self._available

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def warm_up(self, within: float = 1.0) -> bool:
        """Open one pooled connection at startup (a TLS handshake to ElastiCache can take longer
        than one call's timeout); whether Redis answered. A failure is counted like any other."""
        try:
            async with asyncio.timeout(within):
                await self._client.ping()
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed(exc)
            return False
        return True

    async def close(self) -> None:
        await self._client.aclose()

    async def aclose(self) -> None:
        """As `close`: the name the runtime's closeables share."""
        await self.close()

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run `script` once; raise StateUnavailable if Redis did not answer within timeout."""
        return await self._bounded(self._evalsha, script, keys, args)

    async def call(self, *command: Any) -> Any:
        """One plain command, as `execute_command` takes it."""
        return await self._bounded(self._client.execute_command, *command)

    def snapshot(self) -> StoreSnapshot:
        cumulative, running = [], 0
        for bound, count in zip(LATENCY_BUCKETS, self._bucket_counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return StoreSnapshot(
            available=self._available,
            unavailable_total=self._unavailable_total,
            transitions=self._transitions,
            latency_buckets=tuple(cumulative),
            latency_sum=self._latency_sum,
            calls=self._calls,
        )

    async def _evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self._client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            pass  # first use on this Redis, or it restarted: load it and run it again
        await self._client.script_load(script.source)
        return await self._client.evalsha(script.sha, len(keys), *keys, *args)

    async def _bounded(self, call: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                result = await call(*args)
        except (TimeoutError, RedisError, OSError) as exc:
            self._observe(time.perf_counter() - started)
            self._failed(exc)
            raise StateUnavailable(f"shared state unavailable: {type(exc).__name__}") from exc
        self._observe(time.perf_counter() - started)
        if not self._available:
            self._available = True
            self._transitions += 1
            log.warning("shared state is back: fleet-wide limits resume")
        return result

    def _failed(self, exc: BaseException) -> None:
        self._unavailable_total += 1
        if self._available:
            self._available = False
            self._transitions += 1
            log.warning(
                "shared state unavailable (%s): following on_unavailable=%s",
                type(exc).__name__,
                self.settings.on_unavailable,
            )

    def _observe(self, seconds: float) -> None:
        self._calls += 1
        self._latency_sum += seconds
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        if index < len(self._bucket_counts):
            self._bucket_counts[index] += 1


def _client(settings: StateSettings) -> aioredis.Redis:
    # A blocking pool: past max_connections a call waits (within its deadline) for a connection
    # rather than failing at once with "Too many connections" and falling back for nothing.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis,
        max_connections=MAX_CONNECTIONS,
        timeout=settings.timeout,
        socket_timeout=settings.timeout,
        socket_connect_timeout=settings.timeout,
        retry=Retry(NoBackoff(), 0),
    )
    return aioredis.Redis.from_pool(pool)  # owns the pool: close() disconnects it
