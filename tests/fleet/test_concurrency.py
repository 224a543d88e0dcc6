"""max_concurrency held across processes: never above the limit, FIFO, leases that expire."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from gateway.fleet.concurrency import POLL_MAX
from gateway.protection.concurrency import LimitExceeded
from tests.fleet import fleet_children as kids
from tests.fleet.processes import SPAWN, Job, children, collect

PROCESSES = 4
SETTLE = 2.0
OVERTAKE = 4 * POLL_MAX
"""How much earlier a later arrival may be granted: a few poll intervals of a loaded machine
(arrivals are 25 ms apart, so this is about four places in the queue, never more)."""
"""Wall-clock head start so every spawned child is up before the first arrival."""


def _recorder() -> tuple[kids.Counter, kids.Counter]:
    return SPAWN.Value("i", 0), SPAWN.Value("i", 0)


def test_processes_never_hold_more_than_the_limit_and_are_served_in_arrival_order(
    redis_url: str,
) -> None:
    # GIVEN 24 requests arriving 25 ms apart, dealt round-robin over 4 processes, each
    # holding its slot 200 ms, with max_concurrency 5 and a queue long enough for all
    start = time.time() + SETTLE
    arrivals = [(index, start + index * 0.025) for index in range(24)]
    recorder = _recorder()
    jobs: list[Job] = []
    for worker in range(PROCESSES):
        mine = arrivals[worker::PROCESSES]
        jobs.append((kids.contend, (redis_url, mine, (0.2, 10.0), recorder)))
    # WHEN they all run
    with children(jobs) as (_, results):
        reports = collect(results, len(arrivals))
    # THEN every one was served, the recorder never saw more than 5 in flight (and saw 5)
    assert {how for *_, how in reports} == {"granted"}
    assert recorder[1].value == kids.LIMIT
    # AND slots went in order of arrival, up to OVERTAKE of slack
    by_arrival = sorted(reports, key=lambda report: report[1])
    granted = [report[2] for report in by_arrival]
    overtaken = [
        (earlier[0], later[0])
        for position, earlier in enumerate(by_arrival)
        for later in by_arrival[position + 1 :]
        if later[2] < earlier[2] - OVERTAKE
    ]
    print("grant waits (ms):", [round((g - a) * 1000) for _, a, g, _ in by_arrival])
    assert overtaken == [], granted


def test_the_excess_gets_limit_exceeded_after_queue_timeout(redis_url: str) -> None:
    # GIVEN 12 requests at once over 3 processes, each holding 1 s, queue_timeout 300 ms
    start = time.time() + SETTLE
    recorder = _recorder()
    jobs: list[Job] = [
        (
            kids.contend,
            (redis_url, [(worker * 4 + i, start) for i in range(4)], (1.0, 0.3), recorder),
        )
        for worker in range(3)
    ]
    # WHEN they run
    with children(jobs) as (_, results):
        reports = collect(results, 12)
    # THEN 5 are served and 7 told to come back in 1 s; never more than 5 in flight
    outcomes = sorted(how for *_, how in reports)
    assert outcomes == ["exceeded retry_after=1"] * 7 + ["granted"] * 5
    assert recorder[1].value == kids.LIMIT
    print(
        "refused after (ms):",
        [round((g - a) * 1000) for _, a, g, how in reports if how != "granted"],
    )


def test_slots_of_a_killed_instance_come_back_within_the_lease(redis_url: str) -> None:
    # GIVEN an instance holding all 5 slots on 1 s leases
    lease = 1.0
    with children([(kids.hold_and_hang, (redis_url, lease))]) as (started, results):
        assert collect(results, 1) == ["held"]
        # WHEN it is SIGKILLed mid-request
        pid = started[0].pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        # THEN another instance gets all 5 slots back once the leases run out
        held, refused_at_once = asyncio.run(_take_all(redis_url, queue_timeout=lease + 1.0))
    assert refused_at_once == 5
    assert held == kids.LIMIT


async def _take_all(url: str, queue_timeout: float) -> tuple[int, int]:
    store = kids.make_store(url)
    try:
        held_by_dead = await kids.make_limit(store, 0.0, lease=5.0).count_in_flight()
        limit = kids.make_limit(store, queue_timeout, lease=5.0)
        slots = [limit.slot() for _ in range(kids.LIMIT)]
        await asyncio.gather(*(slot.__aenter__() for slot in slots))
        held = await limit.count_in_flight()
        for slot in slots:
            await slot.__aexit__(None, None, None)
        return held, held_by_dead
    finally:
        await store.close()


def test_a_full_fleet_refuses_at_once_with_queue_timeout_zero(redis_url: str) -> None:
    # GIVEN all 5 slots held by another instance, and queue_timeout 0 here
    async def scenario() -> tuple[int, int, int]:
        store = kids.make_store(redis_url)
        holders = kids.make_limit(store, 0.0, lease=5.0)
        slots = [holders.slot() for _ in range(kids.LIMIT)]
        try:
            for slot in slots:
                await slot.__aenter__()
            limit = kids.make_limit(store, 0.0, lease=5.0)
            # WHEN one more arrives
            with pytest.raises(LimitExceeded) as refused:
                async with limit.slot():
                    pass
            seen_by_refused = limit.in_flight
            for slot in slots:
                await slot.__aexit__(None, None, None)
            return refused.value.retry_after, seen_by_refused, await limit.count_in_flight()
        finally:
            await store.close()

    # THEN it is refused with Retry-After 1, having learnt the fleet's count (5) on the way;
    # once they are released the fleet's count is 0
    assert asyncio.run(scenario()) == (1, 5, 0)


def test_a_cancelled_waiter_leaves_the_queue(redis_url: str) -> None:
    # GIVEN a full fleet and a waiter in its queue
    async def scenario() -> int:
        store = kids.make_store(redis_url)
        try:
            holders = kids.make_limit(store, 0.0, lease=5.0)
            slots = [holders.slot() for _ in range(kids.LIMIT)]
            for slot in slots:
                await slot.__aenter__()
            waiting = kids.make_limit(store, 5.0, lease=5.0)

            async def wait() -> None:
                async with waiting.slot():
                    pass

            waiter = asyncio.ensure_future(wait())
            await asyncio.sleep(0.05)
            # WHEN it is cancelled (its client went away), then a slot frees up
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            await slots[0].__aexit__(None, None, None)
            # THEN a newcomer that may not wait gets it: nobody is left ahead of it
            async with holders.slot():
                in_flight = await holders.count_in_flight()
            for slot in slots[1:]:
                await slot.__aexit__(None, None, None)
            return in_flight
        finally:
            await store.close()

    assert asyncio.run(scenario()) == kids.LIMIT
