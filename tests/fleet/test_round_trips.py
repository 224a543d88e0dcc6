"""At most one Redis round trip per protection per request: counted by the store, not assumed.

The store counts round trips (`calls`, one per batch) and the scripts sent in them
(`commands`), so each step's cost is read off it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from gateway.admission.ratelimit import RateLimiter
from gateway.fleet.rate import FleetRateLimiter
from gateway.fleet.store import StateStore
from tests.fleet import fleet_children as kids

Cost = tuple[int, int]
"""(round trips, commands) a step cost."""


async def _cost(store: StateStore, work: Awaitable[object]) -> Cost:
    before = store.snapshot()
    await work
    after = store.snapshot()
    return after.calls - before.calls, after.commands - before.commands


def test_each_protection_costs_one_round_trip_and_a_release_none_of_its_own(
    redis_url: str,
) -> None:
    # GIVEN warm mechanisms (scripts loaded) on one store
    async def scenario() -> dict[str, Cost]:
        store = kids.make_store(redis_url)
        try:
            limit = kids.make_limit(store, 1.0, lease=5.0)
            rate = FleetRateLimiter(
                store, name="r", rate=100.0, burst=100, local=RateLimiter(100.0, 100)
            )
            breaker = kids.make_breaker(store, open_for=5.0)
            async with limit.slot(breaker):
                await rate.check("k")
                await breaker.allow()
            await store.drain()
            costs: dict[str, Cost] = {}

            # WHEN each step runs once more
            slot = limit.slot(breaker)
            costs["acquire with the breaker"] = await _cost(store, slot.__aenter__())
            verdict = slot.breaker_verdict
            costs["release"] = await _cost(store, slot.__aexit__(None, None, None))
            costs["rate check (the release rides along)"] = await _cost(store, rate.check("k"))
            costs["breaker allow alone"] = await _cost(store, breaker.allow())
            costs["breaker record (closed)"] = await _cost(store, breaker.record_status(200))
            in_flight = await limit.count_in_flight()
            return {**costs, "verdict, in flight": (int(bool(verdict)), in_flight)}
        finally:
            await store.close()

    # THEN one round trip per protection; the release costs the request no wait, and is sent
    # with the next call (2 commands in one round trip); nothing to record while closed
    assert asyncio.run(scenario()) == {
        "acquire with the breaker": (1, 1),
        "release": (0, 0),
        "rate check (the release rides along)": (1, 2),
        "breaker allow alone": (1, 1),
        "breaker record (closed)": (0, 0),
        "verdict, in flight": (1, 0),
    }


def test_calls_made_in_one_turn_of_the_loop_share_one_round_trip(redis_url: str) -> None:
    # GIVEN 20 concurrent requests, each taking a slot (limit 50) and checking its rate
    async def scenario() -> tuple[Cost, int]:
        store = kids.make_store(redis_url)
        try:
            limit = kids.make_limit(store, 1.0, lease=5.0, limit=50)
            rate = FleetRateLimiter(
                store, name="r20", rate=100.0, burst=100, local=RateLimiter(100.0, 100)
            )
            await rate.check("warm")
            async with limit.slot():
                pass
            await store.drain()

            async def request(index: int) -> None:
                await rate.check(f"client-{index}")
                async with limit.slot():
                    await asyncio.sleep(0)

            # WHEN they all run at once, and what they posted is sent
            async def everything() -> None:
                await asyncio.gather(*(request(i) for i in range(20)))
                await store.drain()

            cost = await _cost(store, everything())
            return cost, await limit.count_in_flight()
        finally:
            await store.close()

    # THEN the 20 rate checks went in one round trip, the 20 acquires in another and the 20
    # releases in a third: 3 round trips for 60 commands, and every slot is free again
    assert asyncio.run(scenario()) == ((3, 60), 0)
