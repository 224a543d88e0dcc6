"""The parity counters on a real redis-server: two gateway instances, one fleet-wide count."""

from __future__ import annotations

import asyncio

import redis

from gateway.config.model import StateSettings
from gateway.fleet.parity import RedisParityStore
from gateway.fleet.store import StateStore
from gateway.parity.counters import LocalParityStore
from gateway.parity.recorder import Recorder
from gateway.parity.report import parity_report
from gateway.parity.spec import CompareSpec, ShadowSpec
from tests.parity.services import drops_status, legacy, run

NOW = 1_700_000_040.0
SPEC = ShadowSpec("orders-v2", compare=CompareSpec(noise=1.0, min_compared=5))


def test_two_instances_count_as_one_fleet_and_agree_with_one_local_store(
    redis_url: str,
) -> None:
    # GIVEN two instances' stores on one Redis, and a local store as the reference
    async def scenario() -> tuple[dict[str, object], dict[str, object], int]:
        stores = [StateStore(StateSettings(redis_url, "gw:t:", 1.0)) for _ in range(2)]
        fleet = [RedisParityStore(store) for store in stores]
        # WHEN each records half of the pairs (a candidate that drops a field), noise included
        run(Recorder(fleet[0]), SPEC, drops_status, 20, start=NOW)
        run(Recorder(fleet[1]), SPEC, drops_status, 20, start=NOW + 2)
        await asyncio.gather(*(each.flush() for each in fleet))
        await fleet[1].load("orders", 900, NOW + 5)
        shared = parity_report(Recorder(fleet[1]), {"orders": SPEC.compare}, NOW + 5)
        local = Recorder(LocalParityStore())
        run(local, SPEC, drops_status, 20, start=NOW)
        run(local, SPEC, drops_status, 20, start=NOW + 2)
        alone = parity_report(local, {"orders": SPEC.compare}, NOW + 5)
        ttl = await stores[0].call("TTL", "gw:t:{p:orders}:parity:" + str(int(NOW // 60)))
        for store in stores:
            await store.close()
        return shared, alone, int(ttl)

    shared, alone, ttl = asyncio.run(scenario())

    # THEN the fleet's counts are those of one process seeing every pair, minute keys expire
    entry, reference = shared["routes"][0], alone["routes"][0]  # type: ignore[index]
    assert entry["counts"] == reference["counts"]
    assert entry["counts"]["compared"] == 40
    assert entry["score"] == reference["score"] == 0.0
    paths = {(row["path"], row["kind"], row["verdict"]) for row in entry["paths"]}
    assert ("body.status", "missing", "real") in paths
    assert ttl > 3600


def test_reset_forgets_the_route_fleet_wide(redis_url: str) -> None:
    # GIVEN pairs recorded fleet-wide
    async def scenario() -> int:
        store = StateStore(StateSettings(redis_url, "gw:t:", 1.0))
        fleet = RedisParityStore(store)
        run(Recorder(fleet), SPEC, legacy, 10, start=NOW)
        await fleet.flush()
        # WHEN the route is reset
        fleet.reset("orders")
        await fleet.flush()
        loaded = await fleet.load("orders", 900, NOW + 5)
        await store.close()
        return loaded.total.outcomes["compared"]

    # THEN nothing is left of it
    assert asyncio.run(scenario()) == 0
    assert redis.Redis.from_url(redis_url).keys("gw:t:parity:*") == []
