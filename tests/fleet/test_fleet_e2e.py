"""The fleet on one machine, end to end: three gateway processes (one with two workers) and two
Lambda-handler processes share one real redis-server, so each limit holds across all of them."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis as sync_redis

from tests.fleet.fleet_kit import Answer, SlowUpstream, get
from tests.fleet.redis_kit import RedisServer, running_redis
from tests.support.lambda_kit import alb_event, answer_body
from tests.support.lambda_runner import LambdaProcess, lambda_process
from tests.support.servers import free_port, serve_in_thread, serve_process, write_config

TABLE = """\
state: {{redis: "{redis}", timeout: {timeout}, on_unavailable: {on_unavailable}}}
targets:
  slow: {{url: "{up}", timeout: 2s, max_concurrency: 5, queue_timeout: 300ms, breaker: off}}
  hold: {{url: "{up}", timeout: 1s, max_concurrency: 5, queue_timeout: 10ms, breaker: off}}
  flaky: {{url: "{up}", breaker: {{consecutive_failures: 3, min_requests: 100, open_for: 30s}}}}
  plain: {{url: "{up}", breaker: off}}
routes:
  - {{name: slow, path: /slow, target: slow}}
  - {{name: hold, path: /hold, target: hold}}
  - {{name: flaky, path: /fail, target: flaky}}
  - {{name: rated, path: /rated, target: plain, rate: 20/s, burst: 20}}
"""
# A call slower than `timeout` falls back to per-process limits (on_unavailable: local): on a
# busy 2-core machine a Redis call can take 200 ms, so the fleet runs with a generous bound.
FLEET_TIMEOUT = "1s"
ENV = {"GATEWAY_ACCESS_LOG": "off", "GATEWAY_REDIS_URL": ""}


def fleet_table(redis_url: str, upstream_url: str) -> str:
    return TABLE.format(
        redis=redis_url, up=upstream_url, on_unavailable="local", timeout=FLEET_TIMEOUT
    )


class Fleet:
    def __init__(self, gateways: list[str], lambdas: list[LambdaProcess]) -> None:
        self.gateways = gateways
        self.lambdas = lambdas
        self.locks = [threading.Lock() for _ in lambdas]

    def invoke(self, index: int, path: str) -> Answer:
        with self.locks[index]:  # one request at a time per Lambda environment, as on AWS
            answer = self.lambdas[index].invoke(alb_event("GET", path))
        headers = {k.lower(): v[-1] for k, v in (answer.get("multiValueHeaders") or {}).items()}
        error = None
        if answer["statusCode"] >= 400:
            error = json.loads(answer_body(answer)).get("error")
        return Answer(answer["statusCode"], error, headers.get("retry-after"))


def gateway(stack: ExitStack, config: str, *extra: str) -> tuple[str, int]:
    port = free_port()
    argv = ["-m", "gateway.cli.main", "serve", config, "--port", str(port), *extra]
    process = stack.enter_context(serve_process(argv, port, env=ENV))
    return f"http://127.0.0.1:{port}", process.pid


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, SlowUpstream]]:
    app = SlowUpstream()
    with serve_in_thread(app, lifespan="off") as url:
        yield url, app


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: tuple[str, SlowUpstream],
    redis: RedisServer,
) -> Iterator[Fleet]:
    text = fleet_table(redis.url, upstream[0])
    config = write_config(Path(tmp_path_factory.mktemp("fleet")), text)
    with ExitStack() as stack:
        urls = [gateway(stack, config)[0], gateway(stack, config, "--workers", "2")[0]]
        urls.append(gateway(stack, config)[0])
        env = {"GATEWAY_REDIS_URL": ""}
        lambdas = [stack.enter_context(lambda_process(config, env)) for _ in range(2)]
        yield Fleet(urls, lambdas)


def bounded_load(calls: list[Callable[[], Answer]], workers: int) -> list[Answer]:
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result(timeout=30) for future in futures]


def test_max_concurrency_holds_across_every_process_and_lambda(
    fleet: Fleet, upstream: tuple[str, SlowUpstream]
) -> None:
    # GIVEN max_concurrency 5 on a slow upstream, and 22 clients through 3 gateways, 2 Lambdas
    calls: list[Callable[[], Answer]] = []
    for url in fleet.gateways:
        calls += [lambda url=url: get(f"{url}/slow/x") for _ in range(18)]  # type: ignore[misc]
    for index in range(len(fleet.lambdas)):
        calls += [lambda i=index: fleet.invoke(i, "/slow/x") for _ in range(4)]  # type: ignore[misc]

    # WHEN all of them run at once (bounded: 62 requests, each within 30 s)
    answers = bounded_load(calls, workers=22)

    # THEN the upstream never saw more than 5 at a time, and saw 5
    assert upstream[1].most["slow"] == 5
    # AND every request was answered: a 200, or a 503 overloaded with Retry-After
    statuses = {(a.status, a.error, a.retry_after) for a in answers}
    assert statuses <= {(200, None, None), (503, "overloaded", "1")}
    assert sum(a.status == 200 for a in answers) >= 5
    assert sum(a.status == 503 for a in answers) > 0


def test_a_lambda_environment_frees_its_slot_before_the_handler_returns(
    fleet: Fleet, redis: RedisServer
) -> None:
    # GIVEN a Lambda environment behind a fleet-wide limit, the fleet otherwise quiet
    leases = sync_redis.Redis.from_url(redis.url)
    try:
        assert leases.zcard("gw:{t:slow}:conc:leases") == 0
        # WHEN it answers one request through the limited target
        answer = fleet.invoke(1, "/slow/x")
        # THEN the slot is already free in Redis once the handler has returned: a frozen
        # environment holds no lease until it expires
        held = leases.zcard("gw:{t:slow}:conc:leases")
    finally:
        leases.close()
    assert (answer.status, held) == (200, 0)


def state_round_trips(url: str) -> float:
    with urllib.request.urlopen(f"{url}/_gateway/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found = re.search(r"^gateway_state_call_duration_seconds_count ([0-9.e+]+)$", text, re.M)
    assert found is not None, "no gateway_state_call_duration_seconds in /_gateway/metrics"
    assert re.search(r"^gateway_state_available 1\.0$", text, re.M)
    return float(found.group(1))


def test_state_metrics_sum_every_worker(fleet: Fleet) -> None:
    # GIVEN the gateway with two workers  WHEN 40 requests reach it over fresh connections
    # (each worker takes some), each making Redis calls (a rate check)
    url = fleet.gateways[1]
    answers = [get(f"{url}/rated/x") for _ in range(40)]
    # THEN every scrape, whichever worker answers it, counts both workers' round trips
    scrapes = [state_round_trips(url) for _ in range(6)]
    assert {answer.status for answer in answers} <= {200, 429}
    assert len(set(scrapes)) == 1, scrapes
    assert scrapes[0] >= 40


def test_rate_holds_across_processes(fleet: Fleet) -> None:
    # GIVEN rate 20/s burst 20 per client, one client spread over the three gateways
    started = time.monotonic()
    deadline = started + 2.0
    admitted: list[int] = [0, 0, 0]
    seen: Counter[tuple[int, str | None]] = Counter()

    def client(index: int) -> None:
        for _ in range(2000):  # bounded in count and in time
            if time.monotonic() > deadline:
                return
            answer = get(f"{fleet.gateways[index]}/rated/x")
            seen[(answer.status, answer.error)] += 1
            if answer.status == 200:
                admitted[index] += 1

    # WHEN it sends as fast as it can for 2 s
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(client, range(3)))

    # THEN about one process's worth is admitted (20 + 2 s x 20/s), not three times that
    elapsed = time.monotonic() - started
    one_process = 20 + 20 * elapsed  # the burst, then the rate, for as long as it ran
    assert 20 <= sum(admitted) <= one_process + 3
    assert all(count > 0 for count in admitted)
    assert set(seen) == {(200, None), (429, "rate_limited")}


def test_a_breaker_opened_through_one_process_opens_for_all(
    fleet: Fleet, upstream: tuple[str, SlowUpstream]
) -> None:
    # GIVEN three 503s through the first gateway (consecutive_failures: 3)
    first = [get(f"{fleet.gateways[0]}/fail/x") for _ in range(3)]
    hits = upstream[1].hits["fail"]

    # WHEN the others are asked
    others = [get(f"{url}/fail/x") for url in fleet.gateways[1:]]
    others.append(fleet.invoke(0, "/fail/x"))

    # THEN the first saw the upstream's 503s; the others refuse at once, circuit_open
    assert [a.status for a in first] == [503, 503, 503]
    assert [(a.status, a.error) for a in others] == [(503, "circuit_open")] * 3
    assert upstream[1].hits["fail"] == hits


def in_flight(url: str, target: str) -> int:
    with urllib.request.urlopen(f"{url}/_gateway/routes", timeout=5) as reply:
        found: int = json.loads(reply.read())["targets"][target]["limits"]["in_flight"]
        return found


def test_a_killed_process_slots_come_back_within_the_lease(
    tmp_path: Path, fleet: Fleet, upstream: tuple[str, SlowUpstream], redis: RedisServer
) -> None:
    # GIVEN a fourth gateway holding all 5 slots of `hold` (timeout 1s: lease 3s)
    text = fleet_table(redis.url, upstream[0])
    config = write_config(tmp_path, text)
    with ExitStack() as stack:
        doomed, pid = gateway(stack, config)
        pool = stack.enter_context(ThreadPoolExecutor(5))
        for _ in range(5):
            pool.submit(get, f"{doomed}/hold/x")
        for _ in range(200):  # bounded: 10 s
            if in_flight(fleet.gateways[0], "hold") == 5:
                break
            time.sleep(0.05)

        # WHEN it is SIGKILLed while holding them
        os.kill(pid, signal.SIGKILL)
        refused = get(f"{fleet.gateways[0]}/hold/x")
        freed_after = None
        started = time.monotonic()
        for _ in range(200):  # bounded: 10 s
            if in_flight(fleet.gateways[0], "hold") == 0:
                freed_after = time.monotonic() - started
                break
            time.sleep(0.05)

    # THEN the fleet refused while the dead slots were held, then had all 5 back
    assert (refused.status, refused.error) == (503, "overloaded")
    assert freed_after is not None
    answers = bounded_load([lambda: get(f"{fleet.gateways[0]}/hold/x")] * 5, workers=5)
    assert [a.status for a in answers] == [200] * 5


def test_redis_down_then_back_local_answers_closed_refuses_then_both_resume(
    tmp_path: Path, upstream: tuple[str, SlowUpstream], redis_server: RedisServer
) -> None:
    # GIVEN one gateway with on_unavailable local, one with closed, on their own redis-server
    def table(mode: str) -> str:
        text = TABLE.format(
            redis=redis_server.url, up=upstream[0], on_unavailable=mode, timeout="50ms"
        )
        return text + "  - {name: free, path: /free, target: plain}\n"

    local_cfg = write_config(tmp_path, table("local"), "local.yaml")
    closed_cfg = write_config(tmp_path, table("closed"), "closed.yaml")
    with ExitStack() as stack:
        local, _ = gateway(stack, local_cfg)
        closed, _ = gateway(stack, closed_cfg)
        assert get(f"{closed}/rated/x").status == 200

        # WHEN Redis is killed mid-run
        redis_server.kill()
        from_local = [get(f"{local}/{path}/x") for path in ("slow", "rated", "free")]
        from_closed = [get(f"{closed}/{path}/x") for path in ("slow", "rated", "free")]
        down = limits_of(local)

        # AND started again
        redis_server.start()
        back = None
        for _ in range(100):  # bounded: 5 s
            back = get(f"{closed}/rated/x")
            if back.status == 200:
                break
            time.sleep(0.05)
        up = limits_of(local)

    # THEN with local every request was answered, under per-process limits
    assert [a.status for a in from_local] == [200, 200, 200]
    assert down["state"] == "local (shared state unavailable)"
    # AND with closed the protected ones were refused, the unprotected one served (no Redis)
    assert [(a.status, a.error) for a in from_closed] == [
        (503, "state_unavailable"),
        (503, "state_unavailable"),
        (200, None),
    ]
    # AND after the restart fleet-wide limits resumed without restarting the gateways
    assert back is not None and back.status == 200
    assert (up["state"], up["in_flight"]) == ("fleet", 0)


def limits_of(url: str, target: str = "slow") -> dict[str, object]:
    with urllib.request.urlopen(f"{url}/_gateway/routes", timeout=5) as reply:
        found: dict[str, object] = json.loads(reply.read())["targets"][target]["limits"]
        return found
