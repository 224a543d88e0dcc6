"""One Redis round trip per protection per request: counted by the store, not assumed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from gateway.admission.ratelimit import RateLimiter
from gateway.fleet.rate import FleetRateLimiter
from tests.fleet import fleet_children as kids


def test_each_mechanism_costs_one_call_per_step(redis_url: str) -> None:
    # GIVEN warm mechanisms (scripts loaded) on one store
    async def scenario() -> dict[str, int]:
        store = kids.make_store(redis_url)
        try:
            limit = kids.make_limit(store, 1.0, lease=5.0)
            rate = FleetRateLimiter(
                store, name="r", rate=100.0, burst=100, local=RateLimiter(100.0, 100)
            )
            breaker = kids.make_breaker(store, open_for=5.0)
            async with limit.slot():
                await rate.check("k")
                await breaker.allow()
            calls: dict[str, int] = {}

            async def counted(step: str, work: Awaitable[object]) -> None:
                before = store.snapshot().calls
                await work
                calls[step] = store.snapshot().calls - before

            # WHEN each step runs once more
            slot = limit.slot()
            await counted("acquire", slot.__aenter__())
            await counted("release", slot.__aexit__(None, None, None))
            await counted("rate check", rate.check("k"))
            await counted("breaker allow", breaker.allow())
            await counted("breaker record (closed)", breaker.record_status(200))
            return calls
        finally:
            await store.close()

    # THEN one round trip each, and none to record an answer while the breaker is closed
    assert asyncio.run(scenario()) == {
        "acquire": 1,
        "release": 1,
        "rate check": 1,
        "breaker allow": 1,
        "breaker record (closed)": 0,
    }
