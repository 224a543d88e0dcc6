"""A breaker opened by one process is open in the others; the fleet shares its probes."""

from __future__ import annotations

import asyncio
import time

from tests.fleet import fleet_children as kids
from tests.fleet.processes import Job, children, collect

OPEN_FOR = 1.0


async def _allow_here(url: str) -> tuple[bool, float]:
    store = kids.make_store(url)
    try:
        breaker = kids.make_breaker(store, OPEN_FOR)
        return await breaker.allow(), breaker.retry_after()
    finally:
        await store.close()


def test_failures_in_one_process_open_it_in_another(redis_url: str) -> None:
    # GIVEN a process that sees three failures in a row
    with children([(kids.trip, (redis_url, OPEN_FOR))]) as (_, results):
        tripped = collect(results, 1)
    # WHEN another instance, which saw none, asks
    allowed, retry_after = asyncio.run(_allow_here(redis_url))
    # THEN its breaker is open too, for the rest of open_for
    assert tripped == ["open"]
    assert allowed is False
    assert 0 < retry_after <= OPEN_FOR


def test_the_fleet_sends_probes_requests_not_probes_per_instance(redis_url: str) -> None:
    # GIVEN an open breaker (probes: 2)
    with children([(kids.trip, (redis_url, OPEN_FOR))]) as (_, results):
        collect(results, 1)
    # WHEN, after open_for, 3 processes each ask 4 times at once, then report their probes good
    at = time.time() + max(OPEN_FOR, 2.0) + 0.1
    jobs: list[Job] = [(kids.probe, (redis_url, OPEN_FOR, at, 4)) for _ in range(3)]
    with children(jobs) as (_, results):
        granted = collect(results, 3)
    # THEN the fleet let 2 through in all, and their success closed it for everyone
    assert sum(granted) == 2
    allowed, retry_after = asyncio.run(_allow_here(redis_url))
    assert (allowed, retry_after) == (True, 0.0)
