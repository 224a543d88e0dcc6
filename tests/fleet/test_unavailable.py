"""Redis killed, stalled, restarted: on_unavailable decides, nothing waits past timeout.

No wall-clock bound is asserted: a call that was cut by the deadline raises StateUnavailable
from TimeoutError (asyncio.timeout's), which is the proof it did not wait longer; the
durations are printed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.admission.ratelimit import RateLimiter
from gateway.config.model import OnUnavailable
from gateway.fleet.concurrency import FleetConcurrencyLimit
from gateway.fleet.rate import FleetRateLimiter
from gateway.fleet.store import StateStore, StateUnavailable
from gateway.protection.concurrency import ConcurrencyLimit, LimitExceeded
from tests.fleet import fleet_children as kids
from tests.fleet.redis_kit import RedisServer

TIMEOUT = 0.05
T = TypeVar("T")


def _limit(store: StateStore, local_limit: int = 2) -> FleetConcurrencyLimit:
    return FleetConcurrencyLimit(
        store,
        name="legacy",
        limit=5,
        queue_timeout=0.0,
        lease=5.0,
        local=ConcurrencyLimit(local_limit, 0.0),
    )


def _run(
    redis: RedisServer,
    on_unavailable: OnUnavailable,
    scenario: Callable[[StateStore], Awaitable[T]],
) -> T:
    async def bounded() -> T:
        store = kids.make_store(redis.url, on_unavailable, TIMEOUT)
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(bounded())


def test_local_keeps_answering_with_per_process_limits(redis_server: RedisServer) -> None:
    # GIVEN a fleet limit over a local limit of 2, and Redis killed
    async def scenario(store: StateStore) -> tuple[list[str], int, bool]:
        limit = _limit(store)
        redis_server.kill()
        outcomes: list[str] = []
        slots = [limit.slot() for _ in range(3)]
        # WHEN three requests arrive
        for slot in slots:
            try:
                await slot.__aenter__()
                outcomes.append("held")
            except LimitExceeded:
                outcomes.append("local limit")
        for slot in slots:
            await slot.__aexit__(None, None, None)
        snapshot = store.snapshot()
        return outcomes, snapshot.unavailable_total, snapshot.available

    outcomes, unavailable_total, available = _run(redis_server, "local", scenario)
    # THEN each is answered by the local limit: two held, the third refused as locally
    assert outcomes == ["held", "held", "local limit"]
    assert unavailable_total >= 3
    assert available is False


def test_local_rate_falls_back_to_the_local_bucket(redis_server: RedisServer) -> None:
    # GIVEN a fleet rate over a local bucket of burst 2, and Redis killed
    async def scenario(store: StateStore) -> list[bool]:
        limiter = FleetRateLimiter(store, name="r", rate=1.0, burst=2, local=RateLimiter(1.0, 2))
        redis_server.kill()
        # WHEN three checks come  THEN the local bucket answers them
        return [await limiter.check("k") is None for _ in range(3)]

    assert _run(redis_server, "local", scenario) == [True, True, False]


@pytest.mark.parametrize("fault", ["killed", "stalled"], ids=["killed", "stalled"])
def test_closed_raises_state_unavailable_within_the_timeout(
    redis_server: RedisServer, fault: str
) -> None:
    # GIVEN on_unavailable: closed, and Redis killed (refuses) or stalled (SIGSTOP: silent)
    async def scenario(store: StateStore) -> tuple[BaseException | None, float]:
        limit = _limit(store)
        await limit.count_in_flight()  # a pooled connection exists before the fault
        if fault == "killed":
            redis_server.kill()
        else:
            redis_server.stall()
        started = time.perf_counter()
        # WHEN a request wants a slot
        with pytest.raises(StateUnavailable) as raised:
            async with limit.slot():
                pass
        return raised.value.__cause__, time.perf_counter() - started

    cause, took = _run(redis_server, "closed", scenario)
    print(f"{fault}: StateUnavailable from {type(cause).__name__} after {took * 1000:.1f} ms")
    # THEN it fails as StateUnavailable (503); a stalled server is cut by the deadline
    if fault == "stalled":
        assert isinstance(cause, TimeoutError)
    else:
        assert isinstance(cause, RedisConnectionError)


def test_fleet_limits_resume_after_a_restart(redis_server: RedisServer) -> None:
    # GIVEN a store that saw Redis die (and fell back)
    async def scenario(store: StateStore) -> tuple[int, bool, int]:
        limit = _limit(store)
        redis_server.kill()
        async with limit.slot():
            pass
        # WHEN Redis is back (empty: no scripts loaded, no keys)
        redis_server.start()
        async with limit.slot():
            # THEN the same store uses it again: the slot is a fleet lease
            in_flight = await limit.count_in_flight()
        snapshot = store.snapshot()
        return in_flight, snapshot.available, snapshot.transitions

    assert _run(redis_server, "local", scenario) == (1, True, 2)


def test_scripts_are_loaded_again_after_a_flush(redis_server: RedisServer) -> None:
    # GIVEN a script already used, then SCRIPT FLUSH (what a restart or failover does)
    async def scenario(store: StateStore) -> tuple[int, int]:
        limit = _limit(store)
        async with limit.slot():
            before = await limit.count_in_flight()
        await store.call("SCRIPT", "FLUSH")
        # WHEN it runs again  THEN NOSCRIPT is answered by loading it: no failure counted
        async with limit.slot():
            after = await limit.count_in_flight()
        assert store.snapshot().unavailable_total == 0
        return before, after

    assert _run(redis_server, "closed", scenario) == (1, 1)


def test_local_breaker_takes_over_and_the_fleet_one_resumes(redis_server: RedisServer) -> None:
    # GIVEN a fleet breaker (3 failures in a row open it) and Redis killed
    async def scenario(store: StateStore) -> tuple[bool, str, bool, str]:
        breaker = kids.make_breaker(store, open_for=30.0)
        redis_server.kill()
        # WHEN three requests fail through this instance
        for _ in range(3):
            assert await breaker.allow()
            await breaker.record(False)
        # THEN its local breaker opened and refuses on its own
        refused_locally, local_state = await breaker.allow(), breaker.state
        # AND once Redis is back (it never heard of the episode) the fleet's state governs
        redis_server.start()
        return refused_locally, local_state, await breaker.allow(), breaker.state

    assert _run(redis_server, "local", scenario) == (False, "open", True, "closed")


def test_the_store_counts_calls_latency_and_changes(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a store  WHEN it answers twice, fails twice, answers again
    async def scenario(store: StateStore) -> tuple[int, int, int, int]:
        for _ in range(2):
            await store.call("PING")
        redis_server.kill()
        for _ in range(2):
            with pytest.raises(StateUnavailable):
                await store.call("PING")
        redis_server.start()
        await store.call("PING")
        snapshot = store.snapshot()
        return (
            snapshot.calls,
            snapshot.unavailable_total,
            snapshot.transitions,
            snapshot.latency_buckets[-1][1],
        )

    # THEN 5 calls timed (all within the last bucket, 250 ms), 2 counted unavailable, and the
    # two changes (down, back) each logged once
    assert _run(redis_server, "closed", scenario) == (5, 2, 2, 5)
    changes = [record.message for record in caplog.records if record.name == "gateway.fleet"]
    assert [message.startswith("shared state is back") for message in changes] == [False, True]


def test_warm_up_says_whether_redis_answered(redis_server: RedisServer) -> None:
    # GIVEN a store at startup  WHEN it warms up with Redis there, then without
    async def scenario(store: StateStore) -> tuple[bool, bool, bool]:
        there = await store.warm_up()
        redis_server.kill()
        return there, await store.warm_up(within=0.2), store.available

    # THEN the first is True, the second False and counted as a change
    assert _run(redis_server, "local", scenario) == (True, False, False)
