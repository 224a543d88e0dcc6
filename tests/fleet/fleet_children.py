"""What each child process of the fleet tests runs: its own event loop, store and mechanisms.

Each function is a spawn target: it builds everything itself, as an instance of the fleet
would, and reports through a multiprocessing queue.
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from typing import Any, TypeAlias

from gateway.admission.ratelimit import RateLimiter
from gateway.config.model import BreakerPolicy, OnUnavailable, StateSettings
from gateway.fleet.breaker import FleetBreaker
from gateway.fleet.concurrency import FleetConcurrencyLimit
from gateway.fleet.rate import FleetRateLimiter
from gateway.fleet.store import StateStore, StateUnavailable
from gateway.protection.breaker import CircuitBreaker
from gateway.protection.concurrency import ConcurrencyLimit, LimitExceeded

LIMIT = 5
LOADED_TIMEOUT = 0.5
"""Redis call bound while several processes load one CPU: these tests are about limits, and
any StateUnavailable is reported (on_unavailable=closed), never silently absorbed."""

Arrival = tuple[int, float]  # (task index, wall-clock time to arrive at)
Counter: TypeAlias = "Synchronized[int]"  # subscriptable only to the type checker


def make_store(
    url: str, on_unavailable: OnUnavailable = "closed", timeout: float = LOADED_TIMEOUT
) -> StateStore:
    return StateStore(
        StateSettings(redis=url, prefix="gw:test:", timeout=timeout, on_unavailable=on_unavailable)
    )


def make_limit(
    store: StateStore, queue_timeout: float, lease: float, limit: int = LIMIT
) -> FleetConcurrencyLimit:
    return FleetConcurrencyLimit(
        store,
        name="legacy",
        limit=limit,
        queue_timeout=queue_timeout,
        lease=lease,
        local=ConcurrencyLimit(limit, queue_timeout),
    )


def breaker_policy(open_for: float) -> BreakerPolicy:
    return BreakerPolicy(consecutive_failures=3, open_for=open_for, half_open_probes=2)


def make_breaker(store: StateStore, open_for: float) -> FleetBreaker:
    policy = breaker_policy(open_for)
    return FleetBreaker(
        store, name="legacy", policy=policy, local=lambda: CircuitBreaker("legacy", policy)
    )


def contend(
    url: str,
    arrivals: list[Arrival],
    timing: tuple[float, float],
    recorder: tuple[Counter, Counter],
    results: Queue[Any],
) -> None:
    """Each arrival takes a slot and holds it; report (index, arrived, granted, how).

    `timing` is (hold, queue_timeout) in seconds."""
    asyncio.run(_contend(url, arrivals, timing, recorder, results))


async def _contend(
    url: str,
    arrivals: list[Arrival],
    timing: tuple[float, float],
    recorder: tuple[Counter, Counter],
    results: Queue[Any],
) -> None:
    hold, queue_timeout = timing
    store = make_store(url)
    limit = make_limit(store, queue_timeout, lease=30.0)
    in_flight, peak = recorder

    async def one(index: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.time()))
        arrived = time.time()
        try:
            async with limit.slot():
                granted = time.time()
                with in_flight.get_lock():
                    in_flight.value += 1
                    peak.value = max(peak.value, in_flight.value)
                await asyncio.sleep(hold)
                with in_flight.get_lock():
                    in_flight.value -= 1
            how = "granted"
        except LimitExceeded as exc:
            granted, how = time.time(), f"exceeded retry_after={exc.retry_after}"
        except StateUnavailable:
            granted, how = time.time(), "unavailable"
        results.put((index, arrived, granted, how))

    try:
        await asyncio.gather(*(one(index, at) for index, at in arrivals))
    finally:
        await store.close()


def hold_and_hang(url: str, lease: float, results: Queue[Any]) -> None:
    """Take every slot with a short lease, say so, then hang until SIGKILLed."""
    asyncio.run(_hold_and_hang(url, lease, results))


async def _hold_and_hang(url: str, lease: float, results: Queue[Any]) -> None:
    store = make_store(url)
    limit = make_limit(store, queue_timeout=0.0, lease=lease)
    slots = [limit.slot() for _ in range(LIMIT)]
    for slot in slots:
        await slot.__aenter__()
    results.put("held")
    await asyncio.sleep(60)  # the test kills this process long before


def hammer(
    url: str, rate: float, burst: int, window: tuple[float, float], results: Queue[Any]
) -> None:
    """Check one client's key as fast as a loop allows within window; report how many passed."""
    asyncio.run(_hammer(url, rate, burst, window, results))


async def _hammer(
    url: str, rate: float, burst: int, window: tuple[float, float], results: Queue[Any]
) -> None:
    store = make_store(url)
    limiter = FleetRateLimiter(
        store, name="orders", rate=rate, burst=burst, local=RateLimiter(rate, burst)
    )
    start, end = window
    admitted = unavailable = 0
    await asyncio.sleep(max(0.0, start - time.time()))
    while time.time() < end:
        try:
            admitted += await limiter.check("client-1") is None
        except StateUnavailable:
            unavailable += 1
        await asyncio.sleep(0.002)
    await store.close()
    results.put((admitted, unavailable))


def trip(url: str, open_for: float, results: Queue[Any]) -> None:
    """See three failures in a row through this instance: its breaker opens."""
    asyncio.run(_trip(url, open_for, results))


async def _trip(url: str, open_for: float, results: Queue[Any]) -> None:
    store = make_store(url)
    breaker = make_breaker(store, open_for)
    for _ in range(3):
        if await breaker.allow():
            await breaker.record_status(503)
    results.put(breaker.state)
    await store.close()


def probe(url: str, open_for: float, at: float, tries: int, results: Queue[Any]) -> None:
    """At `at`, ask `tries` times at once; report the probes granted, then report them good."""
    asyncio.run(_probe(url, open_for, at, tries, results))


async def _probe(url: str, open_for: float, at: float, tries: int, results: Queue[Any]) -> None:
    store = make_store(url)
    breaker = make_breaker(store, open_for)
    await asyncio.sleep(max(0.0, at - time.time()))
    allowed = await asyncio.gather(*(breaker.allow() for _ in range(tries)))
    results.put(sum(allowed))
    await asyncio.sleep(0.3)  # every instance has asked before any probe reports
    for _ in range(sum(allowed)):
        await breaker.record(True)
    await store.close()
