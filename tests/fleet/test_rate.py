"""rate/burst held across processes: the fleet admits what one token bucket would."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.admission.ratelimit import RateLimiter
from gateway.fleet.rate import FleetRateLimiter
from tests.fleet import fleet_children as kids
from tests.fleet.processes import Job, children, collect

RATE, BURST, WINDOW = 20.0, 20, 2.0


def test_three_processes_admit_one_buckets_worth_not_three(redis_url: str) -> None:
    # GIVEN rate 20/s and burst 20 for one client, spread over 3 processes for 2 s
    start = time.time() + 2.0
    jobs: list[Job] = [
        (kids.hammer, (redis_url, RATE, BURST, (start, start + WINDOW))) for _ in range(3)
    ]
    # WHEN each checks as fast as its loop allows
    with children(jobs) as (_, results):
        reports = collect(results, 3)
    # THEN together they admitted one bucket's worth: the burst plus 2 s of refill (60), where
    # three per-process buckets would have admitted 180
    admitted = sum(count for count, _ in reports)
    print("admitted per process:", [count for count, _ in reports], "total", admitted)
    assert [unavailable for _, unavailable in reports] == [0, 0, 0]
    assert BURST + RATE * WINDOW - 5 <= admitted <= BURST + RATE * WINDOW + 2


@pytest.mark.parametrize(("rate", "burst"), [(10.0, 1), (5.0, 3)], ids=["burst-1", "burst-3"])
def test_a_burst_then_a_wait_of_one_token(redis_url: str, rate: float, burst: int) -> None:
    # GIVEN a fleet limiter  WHEN burst + 1 requests come at once
    async def scenario() -> list[float | None]:
        store = kids.make_store(redis_url)
        try:
            limiter = FleetRateLimiter(
                store, name="r", rate=rate, burst=burst, local=RateLimiter(rate, burst)
            )
            return [await limiter.check("k") for _ in range(burst + 1)]
        finally:
            await store.close()

    answers = asyncio.run(scenario())
    # THEN the burst passes and the next one is told to wait about one token's time
    assert answers[:burst] == [None] * burst
    wait = answers[burst]
    assert wait is not None
    assert 0 < wait <= 1 / rate


def test_keys_are_counted_apart(redis_url: str) -> None:
    # GIVEN burst 1  WHEN two clients ask once each  THEN both pass
    async def scenario() -> list[float | None]:
        store = kids.make_store(redis_url)
        try:
            limiter = FleetRateLimiter(
                store, name="r", rate=1.0, burst=1, local=RateLimiter(1.0, 1)
            )
            return [await limiter.check(key) for key in ("a", "b", "a")]
        finally:
            await store.close()

    first, second, again = asyncio.run(scenario())
    assert (first, second) == (None, None)
    assert again is not None


def test_a_long_key_is_stored_by_its_digest_and_still_limited(redis_url: str) -> None:
    # GIVEN burst 1 and a key of 10,000 characters (a header's value, say)
    async def scenario() -> tuple[float | None, float | None, list[bytes]]:
        store = kids.make_store(redis_url)
        try:
            limiter = FleetRateLimiter(
                store, name="r", rate=1.0, burst=1, local=RateLimiter(1.0, 1)
            )
            # WHEN it asks twice
            answers = await limiter.check("x" * 10_000), await limiter.check("x" * 10_000)
            return *answers, await store.call("KEYS", "*")
        finally:
            await store.close()

    first, second, keys = asyncio.run(scenario())
    # THEN it is limited as any key, under a short Redis key
    assert first is None
    assert second is not None
    assert [len(key) for key in keys] == [len("gw:test:rate:r:sha256:") + 64]
