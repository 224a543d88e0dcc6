"""The store's batches: calls of one turn in one round trip, each answered on its own."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis as sync_redis
from redis.asyncio.connection import Connection

from gateway.fleet.concurrency import AGAIN_AFTER
from gateway.fleet.store import POST_LINGER, QUIET_AFTER_TIMEOUT, StateUnavailable
from gateway.fleet.wire import Script, packed_command
from tests.fleet import fleet_children as kids
from tests.fleet.redis_kit import RedisServer

ECHO = Script("return {KEYS[1], ARGV[1]}")
FAILS = Script("return redis.error_reply('refused by the script')")


@pytest.mark.parametrize(
    "command",
    [
        (ECHO, ("a", "b:é"), (1, 2.5, "x", b"\x00\xff", 1e20, 0.1, -3, 10**20)),
        (None, "HGETALL", "gw:k"),
        (None, "SCAN", 0, "MATCH", "gw:*", "COUNT", 1000),
        (ECHO, (), ()),
    ],
)
def test_commands_are_written_as_redis_py_writes_them(command: tuple[Any, ...]) -> None:
    # GIVEN a command the store sends  WHEN it packs it, and redis-py's own packer does
    script, *rest = command
    words = rest if script is None else ["EVALSHA", script.sha, len(rest[0]), *rest[0], *rest[1]]
    theirs = b"".join(Connection().pack_command(*words))
    # THEN the bytes on the wire are the same
    assert packed_command(command) == theirs


def test_one_failing_script_fails_alone_in_its_batch(redis_url: str) -> None:
    # GIVEN three calls made in one turn, the middle one a script that errors
    async def scenario() -> tuple[list[Any], int]:
        store = kids.make_store(redis_url)
        try:
            before = store.snapshot().calls
            results = await asyncio.gather(
                store.run(ECHO, ("k1",), ("v1",)),
                store.run(FAILS, (), ()),
                store.run(ECHO, ("k2",), ("v2",)),
                return_exceptions=True,
            )
            return list(results), store.snapshot().calls - before
        finally:
            await store.close()

    (first, middle, last), trips = asyncio.run(scenario())
    # THEN one round trip (the scripts loaded on the way), the others answered, and the one
    # refused fails alone, as unavailable state (its caller follows on_unavailable, never a
    # 500), saying why
    assert (first, last) == ([b"k1", b"v1"], [b"k2", b"v2"])
    assert isinstance(middle, StateUnavailable)
    assert "refused by the script" in str(middle)
    assert trips == 1


def test_scripts_forgotten_by_redis_are_loaded_again_within_the_batch(redis_url: str) -> None:
    # GIVEN a warm store  WHEN Redis forgets its scripts (a restart, a failover) and two
    # calls come in one turn
    async def scenario() -> tuple[list[Any], bool]:
        store = kids.make_store(redis_url)
        try:
            await store.run(ECHO, ("k",), ("warm",))
            await store.call("SCRIPT", "FLUSH")
            results = await asyncio.gather(
                store.run(ECHO, ("k1",), ("v1",)), store.run(ECHO, ("k2",), ("v2",))
            )
            return list(results), store.available
        finally:
            await store.close()

    # THEN both are answered, and Redis was never taken for unavailable
    assert asyncio.run(scenario()) == ([[b"k1", b"v1"], [b"k2", b"v2"]], True)


def test_a_stalled_redis_fails_every_call_of_the_batch_within_the_timeout(
    redis_server: RedisServer,
) -> None:
    # GIVEN a warm store with a 100 ms timeout  WHEN Redis stalls (SIGSTOP) and 5 calls come
    async def scenario() -> tuple[list[Any], float, int]:
        store = kids.make_store(redis_server.url, timeout=0.1)
        try:
            await store.run(ECHO, ("k",), ("warm",))
            redis_server.stall()
            started = time.monotonic()
            results = await asyncio.gather(
                *(store.run(ECHO, ("k",), (n,)) for n in range(5)), return_exceptions=True
            )
            waited = time.monotonic() - started
            return list(results), waited, store.snapshot().unavailable_total
        finally:
            redis_server.resume()
            await store.close()

    results, waited, unavailable = asyncio.run(scenario())
    # THEN each caller gets StateUnavailable after about the timeout, each counted
    assert all(isinstance(result, StateUnavailable) for result in results)
    assert waited < 1.0
    assert unavailable == 5


def test_drain_sends_what_was_posted(redis_url: str) -> None:
    # GIVEN a call nobody awaits (a released slot)  WHEN the store drains
    async def scenario() -> tuple[bool, bool, Any]:
        store = kids.make_store(redis_url)
        try:
            store.post(Script("return redis.call('SET', KEYS[1], ARGV[1])"), ("gw:p",), ("1",))
            queued = store.pending
            await store.drain()
            return queued, store.pending, await store.call("GET", "gw:p")
        finally:
            await store.close()

    # THEN it was pending, and is sent: nothing is left, and Redis has it
    assert asyncio.run(scenario()) == (True, False, b"1")


def test_a_posted_call_alone_is_sent_after_a_moment_without_drain(redis_url: str) -> None:
    # GIVEN a quiet store  WHEN a call is posted and nothing else comes
    async def scenario() -> tuple[bool, Any, int]:
        store = kids.make_store(redis_url)
        try:
            store.post(Script("return redis.call('SET', KEYS[1], ARGV[1])"), ("gw:q",), ("1",))
            await asyncio.sleep(POST_LINGER + 0.05)
            return store.pending, await store.call("GET", "gw:q"), store.snapshot().calls
        finally:
            await store.close()

    # THEN it went by itself once the moment passed: nothing is pending, Redis has it
    assert asyncio.run(scenario()) == (False, b"1", 2)


def test_a_slot_whose_acquire_timed_out_comes_back_long_before_its_lease(
    redis_server: RedisServer,
) -> None:
    # GIVEN a fleet limit with 30 s leases, and a store with a 100 ms timeout
    async def scenario() -> tuple[bool, int, int]:
        store = kids.make_store(redis_server.url, on_unavailable="local", timeout=0.1)
        try:
            limit = kids.make_limit(store, queue_timeout=0.0, lease=30.0)
            async with limit.slot():
                pass
            await store.drain()
            # WHEN Redis stalls while a slot is asked for (it answers late: the acquire runs
            # when Redis resumes, after the caller gave up and held a local slot instead)
            redis_server.stall()
            async with limit.slot():
                fell_back = not store.available
            asyncio.get_running_loop().call_later(0.3, redis_server.resume)
            await asyncio.sleep(0.5)
            stale = await limit.count_in_flight()
            await asyncio.sleep(AGAIN_AFTER + 0.5)
            return fell_back, stale, await limit.count_in_flight()
        finally:
            redis_server.resume()
            await store.close()

    fell_back, stale, after = asyncio.run(scenario())
    # THEN the late acquire left a lease nobody holds, and it is released within about a
    # second, not after its 30 s
    assert fell_back
    assert (stale, after) == (1, 0)


def test_a_release_lost_on_a_broken_connection_is_sent_again(redis_server: RedisServer) -> None:
    # GIVEN a held fleet slot with a 30 s lease
    async def scenario() -> tuple[int, int]:
        store = kids.make_store(redis_server.url, on_unavailable="local", timeout=0.5)
        killer = sync_redis.Redis.from_url(redis_server.url)
        try:
            limit = kids.make_limit(store, queue_timeout=0.0, lease=30.0)
            async with limit.slot():
                # WHEN Redis drops the gateway's connections while the slot is held, so the
                # release goes out on a dead one and never reaches Redis
                killer.client_kill_filter(_type="normal", skipme=True)
            await asyncio.sleep(0.2)
            lost = await limit.count_in_flight()
            await asyncio.sleep(AGAIN_AFTER)
            return lost, await limit.count_in_flight()
        finally:
            killer.close()
            await store.close()

    # THEN the slot was still taken, and the release sent again a second later freed it
    assert asyncio.run(scenario()) == (1, 0)


def test_after_a_timeout_calls_go_to_on_unavailable_at_once_for_a_moment(
    redis_server: RedisServer,
) -> None:
    # GIVEN a warm store with a 100 ms timeout, and Redis stalled (SIGSTOP)
    async def scenario() -> tuple[float, float, int, Any]:
        store = kids.make_store(redis_server.url, timeout=0.1)
        try:
            await store.run(ECHO, ("k",), ("warm",))
            redis_server.stall()
            # WHEN a call times out, then 10 more come one after another
            started = time.monotonic()
            with pytest.raises(StateUnavailable):
                await store.run(ECHO, ("k",), ("first",))
            first = time.monotonic() - started
            started = time.monotonic()
            for n in range(10):
                with pytest.raises(StateUnavailable):
                    await store.run(ECHO, ("k",), (n,))
            rest = time.monotonic() - started
            trips = store.snapshot().calls
            # ... and Redis comes back
            redis_server.resume()
            await asyncio.sleep(QUIET_AFTER_TIMEOUT + 0.1)
            return first, rest, trips, await store.run(ECHO, ("k",), ("back",))
        finally:
            redis_server.resume()
            await store.close()

    first, rest, trips, back = asyncio.run(scenario())
    # THEN the first waited its timeout, the 10 others failed at once without a round trip
    # (2 in all: the warm-up and the first), and once the moment passed Redis answered again
    assert 0.09 < first < 1.0
    assert rest < 0.09
    assert trips == 2
    assert back == [b"k", b"back"]
