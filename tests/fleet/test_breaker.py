"""A breaker opened by one process is open in the others; the fleet shares its probes."""

from __future__ import annotations

import asyncio
import contextlib
import time

from gateway.fleet.concurrency import FleetSlot
from gateway.protection.concurrency import LimitExceeded
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


def test_a_slot_asks_the_breaker_in_its_acquire_and_holds_nothing_when_open(
    redis_url: str,
) -> None:
    # GIVEN an open breaker (tripped by another process) and a fleet limit of 1
    with children([(kids.trip, (redis_url, OPEN_FOR))]) as (_, results):
        collect(results, 1)

    async def scenario() -> tuple[bool | None, int, int, bool | None, int]:
        store = kids.make_store(redis_url)
        try:
            breaker = kids.make_breaker(store, OPEN_FOR)
            limit = kids.make_limit(store, queue_timeout=0.5, lease=5.0, limit=1)
            before = store.snapshot().calls
            # WHEN a request takes a slot with the breaker
            refused = limit.slot(breaker)
            await refused.__aenter__()
            trips = store.snapshot().calls - before
            held = await limit.count_in_flight()
            await refused.__aexit__(None, None, None)
            # ... and again once open_for has passed (half-open: a probe)
            await asyncio.sleep(OPEN_FOR + 0.1)
            probing = limit.slot(breaker)
            async with probing:
                granted = await limit.count_in_flight()
            return refused.breaker_verdict, trips, held, probing.breaker_verdict, granted
        finally:
            await store.close()

    verdict, trips, held, probed, granted = asyncio.run(scenario())
    # THEN the open breaker refused it in the acquire's one round trip, with no slot taken;
    # after open_for the slot and a probe came together
    assert (verdict, trips, held) == (False, 1, 0)
    assert (probed, granted) == (True, 1)


def test_a_request_waiting_for_a_slot_never_takes_a_half_open_probe(redis_url: str) -> None:
    # GIVEN a half-open breaker (probes: 2) and a fleet limit of 1, held
    with children([(kids.trip, (redis_url, OPEN_FOR))]) as (_, results):
        collect(results, 1)

    async def scenario() -> tuple[list[bool | None], int]:
        store = kids.make_store(redis_url)
        try:
            breaker = kids.make_breaker(store, OPEN_FOR)
            limit = kids.make_limit(store, queue_timeout=0.3, lease=5.0, limit=1)
            await asyncio.sleep(OPEN_FOR + 0.1)
            first = limit.slot(breaker)
            await first.__aenter__()  # probe 1 of 2
            # WHEN three more wait in the queue until they time out
            waiters = [limit.slot(breaker) for _ in range(3)]

            async def wait(slot: FleetSlot) -> None:
                with contextlib.suppress(LimitExceeded):
                    await slot.__aenter__()

            await asyncio.gather(*(wait(slot) for slot in waiters))
            await first.__aexit__(None, None, None)
            # ... and one more comes after the slot is free
            last = limit.slot(breaker)
            await last.__aenter__()
            await last.__aexit__(None, None, None)
            verdicts = [slot.breaker_verdict for slot in (first, *waiters, last)]
            return verdicts, await limit.count_in_flight()
        finally:
            await store.close()

    verdicts, in_flight = asyncio.run(scenario())
    # THEN the waiters asked no breaker; the second probe went to the next request granted
    assert verdicts == [True, None, None, None, True]
    assert in_flight == 0
