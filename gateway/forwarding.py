"""Sending one request to its target under the target's protection, and falling back.

attempt: concurrency slot -> breaker -> upstream call (a client span per try).
retries: idempotent requests only, on connect errors (the request never left) and the
  target's configured statuses, with jittered backoff, within the retry budget.
fallback: the strangler safety net; an idempotent request the new target failed (connect
  error, timeout, 502/503/504, open breaker, full queue, or a `fallback_on` status) goes to
  the route's `fallback` target instead. A non-idempotent request is never sent twice.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from gateway.config.model import Route
from gateway.errors import CircuitOpen, GatewayError, Overloaded, RequestTimeout
from gateway.fleet.breaker import FleetBreaker
from gateway.fleet.concurrency import FleetConcurrencyLimit, FleetSlot
from gateway.protection.breaker import CircuitBreaker
from gateway.protection.concurrency import LimitExceeded
from gateway.protection.guard import TargetGuard
from gateway.upstreams.base import Upstream, UpstreamRequest, UpstreamResponse

FALLBACK_STATUSES = frozenset({502, 503, 504})
WHOLE_BELOW = 64 * 1024
# How long a small answer's body may take to arrive after its head and still be read whole
# (a clean 502 if the upstream dies in it); past that it streams, so a slow drip's first byte
# waits at most this long. See bench/drip_bench.py for both sides of the trade.
WHOLE_WITHIN = 0.05


Upstreams = Callable[[str], tuple[Upstream, TargetGuard]]


def replayable(request: UpstreamRequest, guard: TargetGuard) -> bool:
    """Safe to send again: an idempotent method, and a body still held whole."""
    return guard.retry.retryable_method(request.method) and isinstance(request.body, bytes)


@dataclass(frozen=True, slots=True)
class FellBack:
    """The route's target failed before the fallback took over: who, with what, and why."""

    target: str
    status: int
    reason: str
    retries: int = 0


@dataclass(frozen=True, slots=True)
class Served:
    """What forwarding did: the answer (or the error that ended it), the target that gave
    it, the target that failed before a fallback, its retries, and the last try's time."""

    target: str
    reply: UpstreamResponse | None = None
    error: GatewayError | None = None
    fell_back: FellBack | None = None
    retries: int = 0
    upstream_seconds: float | None = None


@dataclass(slots=True)
class _Tries:
    """The tries of one target: how many were retried, and how long the last one took."""

    retries: int = 0
    seconds: float | None = None


async def forward(
    upstreams: Upstreams, route: Route, target: str, request: UpstreamRequest
) -> Served:
    """Send `request` to `target` under its protection, falling back where the route says;
    never raises a GatewayError: it is in the result, with what came before it."""
    _, guard = upstreams(target)
    again = replayable(request, guard)
    fallback = route.fallback if again and route.fallback not in (None, target) else None
    tries = _Tries()
    try:
        reply = await _with_retries(upstreams, target, request, again, tries)
    except GatewayError as error:
        if fallback is None or error.status_code not in FALLBACK_STATUSES:
            return Served(
                target, error=error, retries=tries.retries, upstream_seconds=tries.seconds
            )
        failed = FellBack(target, error.status_code, error.code)
    else:
        if fallback is None or reply.status not in FALLBACK_STATUSES | route.fallback_on:
            return Served(target, reply, retries=tries.retries, upstream_seconds=tries.seconds)
        await reply.close()
        failed = FellBack(target, reply.status, f"status_{reply.status}", tries.retries)
    tries = _Tries()
    try:
        reply = await _with_retries(upstreams, fallback, request, again, tries)
    except GatewayError as error:
        return Served(fallback, None, error, failed, tries.retries, tries.seconds)
    return Served(fallback, reply, None, failed, tries.retries, tries.seconds)


async def _with_retries(
    upstreams: Upstreams, target: str, request: UpstreamRequest, again: bool, tries: _Tries
) -> UpstreamResponse:
    upstream, guard = upstreams(target)
    guard.budget.record_request()
    count = guard.retry.attempts if again else 1
    for attempt in range(count):
        last = attempt == count - 1
        try:
            reply = await _attempt(upstream, guard, request, tries)
        except GatewayError as error:
            if last or not error.never_sent or not guard.budget.try_spend():
                raise
        else:
            if last or not guard.retry.retryable_status(reply.status):
                return reply
            if not guard.budget.try_spend():
                return reply
            await reply.close()
        tries.retries += 1
        await asyncio.sleep(guard.retry.delay(attempt))
    raise AssertionError("unreachable: the last try returns or raises")


async def _attempt(
    upstream: Upstream, guard: TargetGuard, request: UpstreamRequest, tries: _Tries
) -> UpstreamResponse:
    slot, verdict = await _take_slot(guard, upstream.name)
    breaker = guard.breaker
    try:
        allowed = breaker is None or (verdict if verdict is not None else await _allows(breaker))
    except BaseException:  # Redis gone between the slot and the breaker (closed): free the slot
        await slot.__aexit__(None, None, None)
        raise
    if breaker is not None and not allowed:
        await slot.__aexit__(None, None, None)
        raise CircuitOpen(
            f"target {upstream.name!r} is failing; its circuit breaker is open",
            target=upstream.name,
            retry_after=max(1, math.ceil(breaker.retry_after())),
        )
    started = time.perf_counter()
    try:
        reply = await _whole_if_small(await upstream.forward(request))
    except GatewayError as error:
        tries.seconds = time.perf_counter() - started
        await slot.__aexit__(None, None, None)
        if breaker is not None:
            await _record(breaker, error.status_code < 500)
        raise
    except BaseException:
        await slot.__aexit__(None, None, None)
        raise
    tries.seconds = time.perf_counter() - started
    if isinstance(breaker, FleetBreaker):
        await breaker.record_status(reply.status)
    elif breaker is not None:
        breaker.record_status(reply.status)
    reply.close = _then(reply.close, lambda: slot.__aexit__(None, None, None))
    if reply.whole is None:
        reply.body = _while_read(reply, reply.body, guard.timeout)
    return reply


async def _allows(breaker: CircuitBreaker | FleetBreaker) -> bool:
    # The fleet's breaker is one script round trip; the local one costs no await.
    return await breaker.allow() if isinstance(breaker, FleetBreaker) else breaker.allow()


async def _record(breaker: CircuitBreaker | FleetBreaker, success: bool) -> None:
    if isinstance(breaker, FleetBreaker):
        await breaker.record(success)
    else:
        breaker.record(success)


_ABANDONING: set[asyncio.Task[None]] = set()


async def _while_read(
    reply: UpstreamResponse, body: AsyncIterator[bytes], timeout: float
) -> AsyncIterator[bytes]:
    """`body`, given up when the client takes no chunk for `timeout`: a client that stops
    reading (without leaving) would otherwise hold the slot and the upstream connection for
    as long as it stays. The answer is then cut short, as an upstream's death would cut it."""
    loop = asyncio.get_running_loop()
    abandoned = False

    def abandon() -> None:
        nonlocal abandoned
        abandoned = True
        closing = asyncio.ensure_future(reply.close())
        _ABANDONING.add(closing)
        closing.add_done_callback(_ABANDONING.discard)

    async for chunk in body:
        timer = loop.call_later(timeout, abandon)
        try:
            yield chunk
        finally:
            timer.cancel()
        if abandoned:
            raise RequestTimeout(f"the client read nothing of the answer for {timeout:g}s")


async def _whole_if_small(reply: UpstreamResponse) -> UpstreamResponse:
    """Read a small answer of known length whole before anything is sent to the client, if it
    all arrives within WHOLE_WITHIN of its head: then an upstream that dies between its head
    and its body is a clean 502 (or a retry, or a fallback), not a connection cut short, and
    the pooled connection is free before the client is answered. An answer still coming after
    that (a slow drip) streams on from what has arrived, so the client's first byte waits at
    most WHOLE_WITHIN. Large or unsized answers stream as they come."""
    if reply.whole is not None:
        return reply
    length = next((v for k, v in reply.headers if k == b"content-length"), None)
    if length is None or not length.isdigit() or int(length) > WHOLE_BELOW:
        return reply
    body = aiter(reply.body)
    chunks: list[bytes] = []
    deadline = asyncio.get_running_loop().time() + WHOLE_WITHIN
    pending: asyncio.Future[bytes | None] | None = None
    try:
        while True:
            # Not wait_for: cancelling a body iterator mid-read would end it; a pending read
            # left alone becomes the first read of the stream instead.
            pending = asyncio.ensure_future(_next(body))
            remaining = deadline - asyncio.get_running_loop().time()
            done, _ = await asyncio.wait({pending}, timeout=max(0.0, remaining))
            if not done:
                reply.body = _resumed(chunks, pending, body)
                return reply
            chunk, pending = pending.result(), None
            if chunk is None:
                break
            chunks.append(chunk)
    except BaseException:
        if pending is not None:
            pending.cancel()
        await reply.close()
        raise
    await reply.close()
    return UpstreamResponse.complete(reply.status, reply.headers, b"".join(chunks))


async def _next(body: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(body)
    except StopAsyncIteration:
        return None


async def _resumed(
    read: list[bytes], pending: asyncio.Future[bytes | None], rest: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    try:
        for chunk in read:
            yield chunk
        first = await pending
    finally:
        pending.cancel()
    if first is None:
        return
    yield first
    async for chunk in rest:
        yield chunk


class _NoSlot:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: object) -> None:
        return None


_NO_SLOT = _NoSlot()


async def _take_slot(
    guard: TargetGuard, name: str
) -> tuple[AbstractAsyncContextManager[None], bool | None]:
    """The slot, and the breaker's verdict when the fleet's acquire asked it (one script)."""
    limit, breaker = guard.limit, guard.breaker
    if limit is None:
        return _NO_SLOT, None
    slot: AbstractAsyncContextManager[None]
    if isinstance(limit, FleetConcurrencyLimit):
        slot = limit.slot(breaker if isinstance(breaker, FleetBreaker) else None)
    else:
        slot = limit.slot()
    try:
        await slot.__aenter__()
    except LimitExceeded as exc:
        raise Overloaded(
            f"target {name!r} has {limit.in_flight} requests in flight, its limit",
            target=name,
            retry_after=exc.retry_after,
        ) from exc
    return slot, slot.breaker_verdict if isinstance(slot, FleetSlot) else None


def _then(
    first: Callable[[], Awaitable[None]], second: Callable[[], Awaitable[object]]
) -> Callable[[], Awaitable[None]]:
    """`first` then `second`, once however often it is called (the slot is freed once)."""
    done = False

    async def both() -> None:
        nonlocal done
        if done:
            return
        done = True
        try:
            await first()
        finally:
            await second()

    return both
