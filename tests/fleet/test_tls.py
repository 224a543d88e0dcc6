"""The fleet's state over TLS (rediss://), as ElastiCache Serverless requires: every script
through the store's own pipelining on redis-py's TLS connections, and a gateway process."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

from gateway.admission.ratelimit import RateLimiter
from gateway.fleet.rate import FleetRateLimiter
from tests.fleet import fleet_children as kids
from tests.fleet.fleet_kit import SlowUpstream, get
from tests.fleet.redis_kit import RedisServer
from tests.support.servers import free_port, serve_in_thread, serve_process, write_config

TABLE = """\
state: {{redis: "{redis}", timeout: 1s}}
targets:
  up: {{url: "{up}", max_concurrency: 5}}
routes:
  - {{name: limited, path: /, target: up, rate: 100/s, burst: 100}}
"""


def test_the_mechanisms_work_over_tls(tls_redis: RedisServer) -> None:
    # GIVEN a store on a TLS-only Redis (rediss://, trusting its self-signed certificate)
    async def scenario() -> tuple[bool | None, int, list[bool], int, int]:
        store = kids.make_store(tls_redis.url)
        try:
            limit = kids.make_limit(store, queue_timeout=0.2, lease=5.0)
            breaker = kids.make_breaker(store, open_for=5.0)
            rate = FleetRateLimiter(store, name="r", rate=10.0, burst=1, local=RateLimiter(10, 1))
            # WHEN a slot is taken with its breaker, a rate checked twice, the slot freed
            slot = limit.slot(breaker)
            async with slot:
                held = await limit.count_in_flight()
            checks = [await rate.check("client") is None for _ in range(2)]
            await store.drain()
            free = await limit.count_in_flight()
            return slot.breaker_verdict, held, checks, free, store.snapshot().unavailable_total
        finally:
            await store.close()

    # THEN each answered as on a plain connection, and nothing failed
    assert asyncio.run(scenario()) == (True, 1, [True, False], 0, 0)


def test_a_gateway_holds_its_limits_over_tls(tmp_path: Path, tls_redis: RedisServer) -> None:
    # GIVEN `gateway serve` with state on the TLS-only Redis
    with serve_in_thread(SlowUpstream(), lifespan="off") as up:
        config = write_config(tmp_path, TABLE.format(redis=tls_redis.url, up=up))
        port = free_port()
        argv = ["-m", "gateway.cli.main", "serve", config, "--port", str(port)]
        with serve_process(argv, port, env={"GATEWAY_ACCESS_LOG": "off"}):
            url = f"http://127.0.0.1:{port}"
            # WHEN it answers requests on the limited route
            statuses = {get(f"{url}/x").status for _ in range(5)}
            with urllib.request.urlopen(f"{url}/_gateway/metrics", timeout=10) as reply:
                metrics = reply.read().decode()
            with urllib.request.urlopen(f"{url}/_gateway/routes", timeout=10) as reply:
                routes = json.loads(reply.read())

    # THEN all went through, its limits are the fleet's, and Redis never failed
    assert statuses == {200}
    assert "gateway_state_unavailable_total 0.0" in metrics
    assert routes["targets"]["up"]["limits"]["state"] == "fleet"
