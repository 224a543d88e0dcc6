"""One Redis client per process, every call bounded, every failure one error.

Built once (on Lambda at cold start) and closed at shutdown. Measured against a SIGSTOPped
redis-server: without a socket timeout a call waits for ever; `socket_timeout=50ms` alone ends a
stalled read (51 ms) and a stalled new connection (52 ms), but per attempt, so redis-py's
retries or a NOSCRIPT reload (three commands) would multiply it. So each round trip runs under
`asyncio.timeout(settings.timeout)`, the one bound over the whole of it (a read it cancels
disconnects its connection), with the client's own retries off and a connect timeout as a
backstop.

After a round trip timed out, the calls of the next QUIET_AFTER_TIMEOUT seconds fail at once
(a stalled Redis would cost each request `timeout` per protection), then one batch tries again.

Availability is tracked as transitions: the first failure after a success logs once and the
first success after failures logs once; every failed call counts in `unavailable_total`. A
later call simply tries again, so a Redis that comes back is used again without a restart.
How a batch goes over the wire (one pipeline, scripts by SHA) is gateway/fleet/wire.py's.

Calls are pipelined ("auto-pipelining", as ioredis and Lettuce do it): every call made in one
turn of the event loop joins one batch, sent at the end of that turn as one pipeline, one round
trip. One batch is on its way at a time, so Redis runs them in the order they were made (a
release before a later acquire); calls made meanwhile form the next batch, sent as soon as the
answer comes. Concurrent requests thus share round trips, and the client's fixed cost per call
(measured: ~120 µs of CPU for a lone EVALSHA, ~19 µs per command in a pipeline of 16) is paid
once per batch. A lone call waits for nothing: its batch is sent in the same turn. Each call
waits at most `timeout` from when it was made, its wait for an earlier batch included.

`post` is a call nobody awaits (a released slot): it goes with its turn's batch, off the
request's path; made alone, it waits up to POST_LINGER for a call to ride with (the next
request's, on a quiet server), and `drain` sends it at once and waits for what is on its way
(the Lambda handler, before its environment freezes; shutdown).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from gateway.config.model import StateSettings
from gateway.errors import GatewayError
from gateway.fleet.wire import Command, Script, Wire, client_for

log = logging.getLogger("gateway.fleet")

QUIET_AFTER_TIMEOUT = 0.5
"""Seconds after a round trip timed out during which calls are not sent but fail at once
(Redis stalled: every request would wait `timeout` per protection); the first batch after
them tries Redis again, so fleet-wide limits resume within this much of its recovery."""
MAX_REFUSALS = 32
"""Distinct reasons for Redis refusing a call that are logged (each once)."""
POST_LINGER = 0.001
"""Seconds a batch of posted calls alone (released slots) waits for an awaited call to share a
round trip with: a slot comes back to the fleet at most this much later."""
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
"""Upper bounds in seconds of the Redis call latency histogram (Prometheus `le`)."""


StateObserver: TypeAlias = Callable[[float | None, int, bool], None]
"""(a round trip's seconds or None, calls failed, available now)."""


class _Quiet(Exception):
    """A batch not sent: Redis timed out a moment ago."""


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
    calls: int  # round trips: one per batch
    commands: int = 0  # scripts and commands sent, in all those round trips


class _Call:
    __slots__ = ("again_after", "command", "deadline", "future")

    def __init__(
        self,
        command: Command,
        future: asyncio.Future[Any] | None,
        deadline: float,
        again_after: float | None = None,
    ) -> None:
        self.command = command
        self.future = future  # None for a posted call: its outcome is only counted
        self.deadline = deadline  # loop time
        self.again_after = again_after  # a posted call sent once more this much later


class StateStore:
    def __init__(
        self,
        settings: StateSettings,
        client: aioredis.Redis | None = None,
        observer: StateObserver | None = None,
    ) -> None:
        self.settings = settings
        self.timeout = settings.timeout
        self.prefix = settings.prefix
        self._wire = Wire(client if client is not None else client_for(settings))
        self._available = True
        self._unavailable_total = 0
        self._transitions = 0
        self._bucket_counts = [0] * len(LATENCY_BUCKETS)
        self._latency_sum = 0.0
        self._calls = 0
        self._commands = 0
        self._batch: list[_Call] | None = None
        self._sending: asyncio.Task[None] | None = None
        self._urgent = False  # whether somebody awaits a call of the next batch
        self._refusals: set[str] = set()  # the reasons already logged
        self._quiet_until = 0.0  # loop time: after a timeout, no round trip before this
        self.observer = observer
        """Told of every round trip and failure, besides this store's own counts: the metrics
        of a multi-worker server, where a scrape must sum every worker's."""

    @property
    def available(self) -> bool:
        """As of the last call."""
        return self._available

    def key(self, *parts: str) -> str:
        """A key of its own: one script never touches it with another."""
        return self.prefix + ":".join(parts)

    def tagged(self, tag: str, *parts: str) -> str:
        """A key of the group `tag`, which one script may use together: `{tag}` is a hash tag,
        so they share a cluster hash slot. ElastiCache Serverless is always a cluster, and
        refuses a script whose keys span slots (CROSSSLOT)."""
        return self.prefix + "{" + tag + "}:" + ":".join(parts)

    async def warm_up(self, within: float = 1.0) -> bool:
        """Open one pooled connection at startup (a TLS handshake to ElastiCache can take longer
        than one call's timeout); whether Redis answered. A failure is counted like any other."""
        try:
            async with asyncio.timeout(within):
                await self._wire.client.ping()
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed(exc)
            return False
        return True

    async def close(self) -> None:
        await self.drain()  # released slots still queued go first
        await self._wire.close()

    async def aclose(self) -> None:
        """As `close`: the name the runtime's closeables share."""
        await self.close()

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run `script` once; raise StateUnavailable if Redis did not answer within timeout."""
        return await self._wait_for((script, keys, args))

    async def call(self, *command: Any) -> Any:
        """One plain command, as `execute_command` takes it; its reply raw (no callbacks)."""
        return await self._wait_for((None, *command))

    def post(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        again_after: float | None = None,
    ) -> None:
        """Run `script` with this turn's batch; nobody waits for it, a failure is only counted.

        With `again_after` (an idempotent script: a release), a failed send goes once more
        that many seconds later: a round trip that timed out may or may not have run."""
        self._enqueue((script, keys, args), None, again_after)

    @property
    def pending(self) -> bool:
        """Whether calls are queued or on their way."""
        return bool(self._batch) or self._sending is not None

    async def drain(self) -> None:
        """Send what is queued and wait until every batch is answered (each bounded)."""
        while self._batch or self._sending is not None:
            if self._sending is None:
                self._send_batch()
            if self._sending is not None:
                await asyncio.wait([self._sending])

    async def _wait_for(self, command: Command) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(command, future)
        return await future

    def _enqueue(
        self,
        command: Command,
        future: asyncio.Future[Any] | None,
        again_after: float | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        if self._batch is None:
            self._batch, self._urgent = [], False
            if future is None and self._sending is None:
                # Only posted calls so far: they wait a moment for a call to ride with.
                loop.call_later(POST_LINGER, self._send_batch)
        self._batch.append(_Call(command, future, loop.time() + self.timeout, again_after))
        if future is not None and not self._urgent:
            self._urgent = True
            if self._sending is None:
                # At the end of this turn of the loop: every call made in it goes in one batch
                # (with a batch on its way, when that one is answered).
                loop.call_soon(self._send_batch)

    def _send_batch(self) -> None:
        if self._sending is not None:
            return  # one batch at a time: sent in order, run by Redis in order
        batch, self._batch = self._batch, None
        if batch:
            self._sending = asyncio.ensure_future(self._send(batch))
            self._sending.add_done_callback(self._sent)

    def _sent(self, _: asyncio.Task[None]) -> None:
        self._sending = None
        if self._batch:
            self._send_batch()

    async def _send(self, batch: list[_Call]) -> None:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        # Each call waits at most `timeout` from when it was made, queueing included.
        deadline = min(call.deadline for call in batch)
        try:
            if loop.time() < self._quiet_until:
                raise _Quiet(f"Redis timed out less than {QUIET_AFTER_TIMEOUT:g}s ago")
            async with asyncio.timeout_at(deadline):
                results = await self._wire.execute([call.command for call in batch])
        except (TimeoutError, RedisError, OSError, _Quiet) as exc:
            if isinstance(exc, TimeoutError):
                # A stalled Redis would cost every request `timeout` per call: the calls of
                # the next moment go to on_unavailable at once, then one batch tries again.
                self._quiet_until = loop.time() + QUIET_AFTER_TIMEOUT
            if not isinstance(exc, _Quiet):
                self._observe(time.perf_counter() - started, len(batch))
            self._failed(exc, len(batch))
            self._fail_batch(batch, exc, loop)
            return
        except BaseException:  # cancelled (a loop shutting down): nobody may wait for ever
            for call in batch:
                if call.future is not None and not call.future.done():
                    call.future.cancel()
            raise
        if not self._available:
            self._available = True
            self._transitions += 1
            log.warning("shared state is back: fleet-wide limits resume")
        self._observe(time.perf_counter() - started, len(batch))
        self._answer_batch(batch, results)

    def _fail_batch(
        self, batch: list[_Call], exc: BaseException, loop: asyncio.AbstractEventLoop
    ) -> None:
        for call in batch:
            if call.future is not None and not call.future.done():
                error = StateUnavailable(f"shared state unavailable: {type(exc).__name__}")
                error.__cause__ = exc
                call.future.set_exception(error)
            elif call.future is None and call.again_after is not None:
                loop.call_later(call.again_after, self._enqueue, call.command, None)

    def _answer_batch(self, batch: list[_Call], results: list[Any]) -> None:
        for call, result in zip(batch, results, strict=True):
            refused = (
                self._refused(call.command, result) if isinstance(result, ResponseError) else None
            )
            if call.future is None or call.future.done():
                continue
            if refused is not None:
                call.future.set_exception(refused)
            else:
                call.future.set_result(result)

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
            commands=self._commands,
        )

    def _refused(self, command: Command, error: ResponseError) -> StateUnavailable:
        """Redis answered but refused this one call (CROSSSLOT, OOM, a script's error): the
        caller follows on_unavailable like any failure, never a 500; logged once per reason."""
        self._unavailable_total += 1
        what = "script" if command[0] is not None else str(command[1])
        reason = f"Redis refused a {what}: {error}"
        if reason not in self._refusals and len(self._refusals) < MAX_REFUSALS:
            self._refusals.add(reason)
            log.error("%s (following on_unavailable=%s)", reason, self.settings.on_unavailable)
        refused = StateUnavailable(f"shared state unavailable: {reason}")
        refused.__cause__ = error
        if self.observer is not None:
            self.observer(None, 1, self._available)
        return refused

    def _failed(self, exc: BaseException, calls: int = 1) -> None:
        self._unavailable_total += calls
        if self._available:
            self._available = False
            self._transitions += 1
            log.warning(
                "shared state unavailable (%s): following on_unavailable=%s",
                type(exc).__name__,
                self.settings.on_unavailable,
            )
        if self.observer is not None:
            self.observer(None, calls, False)

    def _observe(self, seconds: float, commands: int = 1) -> None:
        self._calls += 1
        self._commands += commands
        self._latency_sum += seconds
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        if index < len(self._bucket_counts):
            self._bucket_counts[index] += 1
        if self.observer is not None:
            self.observer(seconds, 0, self._available)
