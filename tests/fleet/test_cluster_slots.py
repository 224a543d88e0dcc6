"""Every fleet script on a Redis cluster, as ElastiCache Serverless runs (always a cluster):
the keys one script uses must share a hash slot, which a plain redis-server never checks."""

from __future__ import annotations

import asyncio

import pytest

from gateway.admission.ratelimit import RateLimiter
from gateway.fleet.parity import RedisParityStore
from gateway.fleet.rate import FleetRateLimiter
from gateway.fleet.store import StateUnavailable
from gateway.fleet.wire import Script
from gateway.parity.recorder import Recorder
from gateway.parity.report import parity_report
from tests.fleet import fleet_children as kids
from tests.fleet.redis_kit import RedisServer
from tests.fleet.test_parity_store import NOW, SPEC
from tests.parity.services import drops_status, run

TWO_KEYS = Script("return redis.call('MGET', KEYS[1], KEYS[2])")


def test_the_cluster_refuses_a_script_whose_keys_span_slots(cluster_redis: RedisServer) -> None:
    # GIVEN the one-node cluster  WHEN a script uses two keys of different slots
    async def scenario() -> None:
        store = kids.make_store(cluster_redis.url)
        try:
            await store.run(TWO_KEYS, ("gw:a", "gw:b"), ())
        finally:
            await store.close()

    # THEN it is refused, as ElastiCache Serverless would (so the test below means something)
    with pytest.raises(StateUnavailable, match="hash to the same slot"):
        asyncio.run(scenario())


def test_every_fleet_mechanism_works_on_a_cluster(cluster_redis: RedisServer) -> None:
    # GIVEN a store on the cluster
    async def scenario() -> tuple[list[object], int, int]:
        store = kids.make_store(cluster_redis.url)
        try:
            limit = kids.make_limit(store, queue_timeout=0.2, lease=5.0, limit=1)
            breaker = kids.make_breaker(store, open_for=5.0)
            rate = FleetRateLimiter(store, name="r", rate=10.0, burst=1, local=RateLimiter(10, 1))
            parity = RedisParityStore(store)
            seen: list[object] = []
            # WHEN each mechanism runs its scripts: a slot with its breaker, queued and freed
            slot = limit.slot(breaker)
            async with slot:
                seen.append(slot.breaker_verdict)
                seen.append(await limit.count_in_flight())
                with pytest.raises(Exception, match="in flight"):
                    async with limit.slot(breaker):
                        pass
            # ... a breaker tripped and probed, a rate checked twice, parity counted and read
            for _ in range(3):
                if await breaker.allow():
                    await breaker.record_status(503)
            seen.append(breaker.state)
            seen.append([await rate.check("client") is None for _ in range(2)])
            run(Recorder(parity), SPEC, drops_status, 10, start=NOW)
            await parity.flush()
            await parity.load("orders", 900, NOW + 5)
            report = parity_report(Recorder(parity), {"orders": SPEC.compare}, NOW + 5)
            seen.append(report["routes"][0]["counts"]["compared"])
            parity.reset("orders")
            await parity.flush()
            await store.drain()
            return seen, await limit.count_in_flight(), store.snapshot().unavailable_total
        finally:
            await store.close()

    seen, in_flight, refused = asyncio.run(scenario())
    # THEN each answered as on a plain server, and the cluster refused nothing
    assert seen == [True, 1, "open", [True, False], 10]
    assert (in_flight, refused) == (0, 0)
