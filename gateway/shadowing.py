"""Shadow copies: after the client has its answer, the same request goes to the route's
candidate and the two answers are compared (`gateway.parity`). Never in the client's way.

The corridor calls `Shadowing.start(...)` once it has the primary's answer: it decides
whether to copy (`should_copy`), holds the request body (only a body already whole, up to
`max_body`) and tees the answer's body as it streams to the client, up to `max_body`. When the
client's answer is done, `finish(...)` launches the copy as a task: bounded per route
(MAX_COPIES in flight; past it the copy is dropped and counted), with the spec's `timeout`;
its failure or slowness is a `no_answer` pair and nothing else. A `noise` share of copies asks
the primary again, only when a slot of the primary's `max_concurrency` is free right now.
Copies carry `x-gateway-shadow: 1`; being tasks started inside the request, their client
spans have the request's server span as parent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from gateway.config.model import Route
from gateway.errors import GatewayError
from gateway.headers import HeaderView
from gateway.parity.compare import Answer, Outcome
from gateway.parity.evidence import request_line
from gateway.parity.recorder import Pair, Recorder
from gateway.parity.score import score
from gateway.parity.spec import ShadowSpec, should_copy, should_sample_noise
from gateway.protection.concurrency import ConcurrencyLimit
from gateway.runtime import Runtime
from gateway.upstreams.base import Upstream, UpstreamRequest, UpstreamResponse

logger = logging.getLogger("gateway.shadow")

MAX_COPIES = 32
"""Copies in flight per route; past it a copy is dropped (counted), never queued."""
SHUTDOWN_GRACE = 2.0
SHADOW_HEADER = (b"x-gateway-shadow", b"1")


class TooLarge(Exception):
    """An answer past `max_body`: the pair is skipped."""


@dataclass(slots=True)
class Tee:
    """One copied request: what it sent, and the primary's answer as the client gets it."""

    route: Route
    spec: ShadowSpec
    primary_target: str
    request: UpstreamRequest
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    over: bool = False
    done: bool = False

    def body(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return self._teed(body)

    async def _teed(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in body:
            self.keep(chunk)
            yield chunk
        self.done = True

    def keep(self, chunk: bytes) -> None:
        if self.over:
            return
        self.size += len(chunk)
        if self.size > self.spec.max_body:
            self.over, self.chunks = True, []
        else:
            self.chunks.append(chunk)


@dataclass(slots=True)
class Shadowing:
    """Per process: the recorder, the copies in flight, and the counters for the metrics."""

    recorder: Recorder = field(default_factory=Recorder)
    copies: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(route, outcome) -> copies, since start: compared, dropped, skipped, no_answer."""
    mismatches: Counter[str] = field(default_factory=Counter)
    in_flight: Counter[str] = field(default_factory=Counter)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    hand_off: Callable[[Shadowing, Tee, int], None] | None = None
    """On Lambda (set by the Lambda entry): how a copy leaves once the answer is collected."""

    def start(
        self, route: Route, served_target: str, request: UpstreamRequest, reply: UpstreamResponse
    ) -> Tee | None:
        """A Tee when this request is copied; the reply's body is then teed through it."""
        spec = route.shadow
        if spec is None or served_target == spec.target:
            return None
        headers = HeaderView(request.headers)
        lowered = {"idempotency-key": headers.get("idempotency-key") or ""}
        if not should_copy(spec, request.method, lowered, random.random()):
            return None
        if not isinstance(request.body, bytes) or len(request.body) > spec.max_body:
            self.count(route.name, "skipped")
            return None
        tee = Tee(route, spec, served_target, request, reply.status, tuple(reply.headers))
        if reply.whole is not None:
            tee.keep(reply.whole)
            tee.done = True
        else:
            reply.body = tee.body(reply.body)
        return tee

    def finish(self, runtime: Runtime, tee: Tee, status: int, *, on_lambda: bool = False) -> None:
        """The client has its answer: launch the copy (or count why not). On Lambda nothing
        runs after the answer: the copy is handed off (`shadow_lambda`), or skipped."""
        name = tee.route.name
        if on_lambda:
            if self.hand_off is None:
                self.count(name, "skipped")
            else:
                self.hand_off(self, tee, status)
            return
        if tee.over or not tee.done or status != tee.status:
            self.count(name, "skipped")
            return
        if self.in_flight[name] >= MAX_COPIES:
            self.count(name, "dropped")
            return
        self.in_flight[name] += 1
        task = asyncio.ensure_future(self._copy(runtime, tee))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def count(self, route: str, outcome: Outcome) -> None:
        self.copies[(route, outcome)] += 1
        self.recorder.outcome(route, outcome, time.time())

    async def _copy(self, runtime: Runtime, tee: Tee) -> None:
        name, spec = tee.route.name, tee.spec
        try:
            primary = Answer(tee.status, tee.headers, b"".join(tee.chunks))
            request = tee.request.with_headers([*tee.request.headers, SHADOW_HEADER])
            try:
                candidate: Answer | None = await ask(
                    runtime.upstreams[spec.target], request, spec.max_body, spec.timeout
                )
            except TooLarge:
                self.count(name, "skipped")
                return
            line = request_line(
                request.method,
                request.path.decode("latin-1"),
                request.query.decode("latin-1"),
            )
            result = self.recorder.pair(name, spec, Pair(line, primary, candidate), time.time())
            self.copies[(name, result.outcome)] += 1
            if result.differences:
                self.mismatches[name] += 1
            if should_sample_noise(spec, random.random()):
                await self._noise(runtime, tee, primary, request)
        except Exception:
            logger.exception("shadow copy on route %s failed", name)
        finally:
            self.in_flight[name] -= 1

    async def _noise(
        self, runtime: Runtime, tee: Tee, primary: Answer, request: UpstreamRequest
    ) -> None:
        """Ask the primary again, only if its concurrency limit has a free slot now."""
        upstream, guard = runtime.pair(tee.primary_target)
        target = runtime.config.targets.get(tee.primary_target)
        limit = guard.limit
        most = getattr(target, "max_concurrency", None)
        # A fleet limit has no local queue to look at: its last-seen fleet count stands in.
        waiting = limit.waiting if isinstance(limit, ConcurrencyLimit) else 0
        if limit is not None and (waiting or (most and limit.in_flight >= most)):
            return
        slot = limit.slot() if limit is not None else None
        if slot is not None:
            await slot.__aenter__()
        try:
            again = await ask(upstream, request, tee.spec.max_body, tee.spec.timeout)
        except TooLarge:
            return
        finally:
            if slot is not None:
                await slot.__aexit__(None, None, None)
        if again is not None:
            self.recorder.noise(tee.route.name, tee.spec, primary, again, time.time())

    def metrics_text(self, runtime: Runtime) -> bytes:
        """Prometheus text for the copies, mismatches and scores (appended to /metrics)."""
        if not self.copies and not any(r.shadow for r in runtime.config.routes):
            return b""
        return ("\n".join(_metrics_lines(self, runtime)) + "\n").encode()

    async def aclose(self, grace: float | None = None) -> None:
        """Shutdown: copies in flight get `grace` (SHUTDOWN_GRACE) seconds, then are cancelled."""
        if not self.tasks:
            return
        wait = SHUTDOWN_GRACE if grace is None else grace
        _, pending = await asyncio.wait(set(self.tasks), timeout=wait)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def ask(
    upstream: Upstream, request: UpstreamRequest, max_body: int, timeout: float
) -> Answer | None:
    """The upstream's whole answer; None when it failed or took past `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            reply = await upstream.forward(request)
            try:
                body = await _read(reply, max_body)
            finally:
                await reply.close()
    except (GatewayError, TimeoutError, OSError):
        return None
    return Answer(reply.status, tuple(reply.headers), body)


async def _read(reply: UpstreamResponse, max_body: int) -> bytes:
    if reply.whole is not None:
        if len(reply.whole) > max_body:
            raise TooLarge
        return reply.whole
    chunks, size = [], 0
    async for chunk in reply.body:
        size += len(chunk)
        if size > max_body:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _metrics_lines(shadowing: Shadowing, runtime: Runtime) -> list[str]:
    lines = [
        "# HELP gateway_shadow_copies_total Shadow copies per route by outcome.",
        "# TYPE gateway_shadow_copies_total counter",
    ]
    for (route, outcome), count in sorted(shadowing.copies.items()):
        lines.append(f'gateway_shadow_copies_total{{route="{route}",outcome="{outcome}"}} {count}')
    lines += [
        "# HELP gateway_parity_mismatches_total Copied requests whose answers differed.",
        "# TYPE gateway_parity_mismatches_total counter",
    ]
    for route, count in sorted(shadowing.mismatches.items()):
        lines.append(f'gateway_parity_mismatches_total{{route="{route}"}} {count}')
    lines += [
        "# HELP gateway_parity_score Parity score (percent) over the route's window.",
        "# TYPE gateway_parity_score gauge",
    ]
    now = time.time()
    for each in runtime.config.routes:
        if each.shadow is None:
            continue
        spec = each.shadow.compare
        tally = shadowing.recorder.store.snapshot(each.name, spec.window, now).window
        value = score(tally, spec).score
        if value is not None:
            lines.append(f'gateway_parity_score{{route="{each.name}"}} {value:g}')
    return lines
