"""One bounded fault run on loopback, as a new user of the resilience features checks them.

Three processes on 127.0.0.1: the legacy stub, orders-v2 and the gateway in front of them.
Sixteen clients send reads, order creations and uploads for twenty seconds while a scenario
kills orders-v2 (SIGKILL), starts it again on the same port, slows the legacy (part of the
load goes to /_stub/slow) until its concurrency limit fills, then has orders-v2 answer only
after its timeout, once it has done the work. Afterwards: every request got a correct answer
or a clean JSON error in time; reads the failing service dropped were served by the fallback;
no non-idempotent body reached an upstream twice; the legacy never had more than its limit
inside; the gateway's memory and sockets came back to where they were.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.forwarding import WHOLE_BELOW
from tests.support.fault_kit import (
    JOURNAL_ENV,
    STALL_PATH,
    STATS_PATH,
    Footprint,
    Service,
    answer_head_then_close,
    as_json,
    percentile,
    read_journal,
    running,
    uvicorn_argv,
)
from tests.support.gateways import GatewayFactory
from tests.support.servers import free_port, raw_tcp_upstream, write_config

pytestmark = pytest.mark.usefixtures("close_the_import_time_event_loop")

CLIENTS = 16
LOAD_SECONDS = 20.0
KILL_AT, RESTART_AT = 5.0, 10.0
SLOW_FROM, SLOW_UNTIL = 13.0, 17.0
SLOW_SHARE = 0.7  # of the requests sent while the legacy is slowed
STALL_FROM, STALL_UNTIL = 17.0, 19.0
STALL_SECONDS = 1.5  # orders-v2 answers only after its 1 s timeout
CLIENT_TIMEOUT = 5.0  # above the legacy's 2 s, plus a failed try at orders-v2 before it
LEGACY_LIMIT = 8
GATEWAY_ERRORS = frozenset({429, 502, 503, 504})
MARKER_BASE = 1_000_000  # user_id of a created order: its request's unique id
SOCKET_MARGIN = 2
SETTLE_SECONDS = 15.0
RSS_GROWTH_KB = 30 * 1024

TABLE = """
targets:
  legacy:
    url: http://127.0.0.1:{legacy}
    timeout: 2s
    max_concurrency: {limit}
    queue_timeout: 200ms
  orders-v2:
    url: http://127.0.0.1:{orders}
    timeout: 1s
    connect_timeout: 200ms
    breaker: {{consecutive_failures: 3, open_for: 1s}}
routes:
  - {{name: orders, path: /api/orders, methods: [GET], fallback: legacy,
      split: {{legacy: 50, orders-v2: 50}}}}
  - {{name: orders-create, path: /api/orders, methods: [POST], target: orders-v2,
      fallback: legacy}}
  - {{name: upload, path: /_stub/upload, methods: [POST], target: legacy}}
  - {{name: legacy, path: /, target: legacy}}
"""


@dataclass(frozen=True, slots=True)
class Stack:
    gateway: str
    gateway_pid: int
    legacy: str
    orders: Service
    journals: dict[str, Path]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    legacy_port, orders_port, gateway_port = free_port(), free_port(), free_port()
    journals = {name: tmp_path / f"{name}.journal" for name in ("legacy", "orders-v2")}
    table = TABLE.format(legacy=legacy_port, orders=orders_port, limit=LEGACY_LIMIT)
    gateway_env = {"GATEWAY_CONFIG": write_config(tmp_path, table), "GATEWAY_ACCESS_LOG": "off"}
    with ExitStack() as stack:

        def start(argv: list[str], port: int, env: dict[str, str]) -> Service:
            return stack.enter_context(running(Service(argv, port, env)))

        def upstream(app: str, port: int, name: str) -> Service:
            argv = uvicorn_argv(app, port, "--factory", "--no-access-log")
            return start(argv, port, {JOURNAL_ENV: str(journals[name])})

        upstream("tests.support.fault_kit:legacy", legacy_port, "legacy")
        orders = upstream("tests.support.fault_kit:orders_v2", orders_port, "orders-v2")
        argv = uvicorn_argv("gateway.app:app", gateway_port, "--no-proxy-headers")
        gateway = start(argv, gateway_port, gateway_env)
        yield Stack(
            gateway=f"http://127.0.0.1:{gateway_port}",
            gateway_pid=gateway.pid,
            legacy=f"http://127.0.0.1:{legacy_port}",
            orders=orders,
            journals=journals,
        )


# --- the load ------------------------------------------------------------------------------


@dataclass(slots=True)
class Call:
    kind: str  # read | create | upload | slow
    method: str
    path: str
    body: bytes = b""
    marker: int | None = None

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


@dataclass(slots=True)
class Outcome:
    call: Call
    started: float
    elapsed: float
    status: int | None = None
    problem: str = ""
    fallback: bool = False
    target: str | None = None
    error: str | None = None
    cut: bool = False  # the head came, then the connection closed before the body
    length: int | None = None  # the content-length the head promised


@dataclass(slots=True)
class Run:
    """The clock of one run and what happened in it; shared by the clients and the scenario."""

    t0: float = field(default_factory=time.monotonic)
    slow: bool = False
    events: dict[str, float] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(MARKER_BASE))

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def until(self, moment: float) -> None:
        await asyncio.sleep(max(0.0, moment - self.now()))

    def mark(self, event: str) -> None:
        self.events[event] = self.now()


def next_call(rng: random.Random, run: Run) -> Call:
    if run.slow and rng.random() < SLOW_SHARE:
        return Call("slow", "GET", "/_stub/slow?seconds=0.5")
    kind = rng.choices(["read", "create", "upload"], weights=[5, 2, 2])[0]
    if kind == "read":
        return Call("read", "GET", rng.choice(["/api/orders", "/api/orders/2"]))
    if kind == "create":
        marker = next(run.ids)
        item = {"product_id": 1, "quantity": 1, "unit_price_cents": 100}
        body = {"user_id": marker, "items": [item], "request_id": os.urandom(8).hex()}
        return Call("create", "POST", "/api/orders", json.dumps(body).encode(), marker)
    return Call("upload", "POST", "/_stub/upload", os.urandom(rng.randint(1, 96) * 1024))


def check(call: Call, response: httpx.Response) -> str:
    """What is wrong with the answer, or "" for a right answer or a clean gateway error."""
    status, body = response.status_code, as_json(response.content)
    if status in GATEWAY_ERRORS:
        if not isinstance(body, dict) or not isinstance(body.get("error"), str):
            return f"{status} is not a gateway JSON error: {response.text[:120]!r}"
        if status == 503 and not response.headers.get("retry-after"):
            return f"503 {body['error']} without Retry-After"
        return ""
    if response.headers.get("x-served-by") != response.headers.get("x-gateway-target"):
        return "x-served-by differs from x-gateway-target"
    if not isinstance(body, dict) or not right_answer(call, status, body):
        return f"{call.kind}: {status} {response.text[:120]!r}"
    return ""


def right_answer(call: Call, status: int, body: dict[str, Any]) -> bool:
    match call.kind:
        case "read":
            return status == 200 and ("orders" in body or body.get("id") == 2)
        case "create":
            return status == 201 and body.get("user_id") == call.marker
        case "upload":
            return status == 200 and body == {"bytes": len(call.body), "sha256": call.sha}
        case _:
            return status == 200 and body == {"slept": 0.5}


async def send(client: httpx.AsyncClient, call: Call, run: Run) -> Outcome:
    started = run.now()
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT):
            response, cut = await ask(client, call)
    except (httpx.HTTPError, TimeoutError) as exc:
        problem = f"no answer: {type(exc).__name__} {exc}"
        return Outcome(call, started, run.now() - started, problem=problem)
    body = None if cut else as_json(response.content)
    return Outcome(
        call,
        started,
        run.now() - started,
        status=response.status_code,
        problem="" if cut else check(call, response),
        fallback=response.headers.get("x-gateway-fallback") == "true",
        target=response.headers.get("x-gateway-target"),
        error=body.get("error") if isinstance(body, dict) else None,
        cut=cut,
        length=int(length) if (length := response.headers.get("content-length")) else None,
    )


async def ask(client: httpx.AsyncClient, call: Call) -> tuple[httpx.Response, bool]:
    """The answer, and whether its body was cut short after its head had come."""
    headers = {"content-type": "application/json"} if call.kind == "create" else {}
    content = call.body or None
    request = client.build_request(call.method, call.path, content=content, headers=headers)
    response = await client.send(request, stream=True)
    try:
        await response.aread()
    except (httpx.RemoteProtocolError, httpx.ReadError):  # closed or reset, not a timeout
        return response, True
    finally:
        await response.aclose()
    return response, False


async def client_loop(client: httpx.AsyncClient, number: int, run: Run) -> None:
    rng = random.Random(number)
    while run.now() < LOAD_SECONDS:
        run.outcomes.append(await send(client, next_call(rng, run), run))


async def scenario(run: Run, orders: Service) -> None:
    await run.until(KILL_AT)
    run.mark("orders-v2 killing")
    await asyncio.to_thread(orders.kill)
    run.mark("orders-v2 killed")
    await run.until(RESTART_AT)
    run.mark("orders-v2 restarting")
    await asyncio.to_thread(orders.start)
    run.mark("orders-v2 back")
    await run.until(SLOW_FROM)
    run.slow = True
    run.mark("legacy slowed")
    await run.until(SLOW_UNTIL)
    run.slow = False
    run.mark("legacy fast")
    # orders-v2 now does the work (an order created), then answers after the gateway gave up:
    # a retry, or a fallback, of a POST would do it twice.
    async with httpx.AsyncClient(base_url=orders.url) as direct:
        await run.until(STALL_FROM)
        (await direct.put(f"{STALL_PATH}?seconds={STALL_SECONDS}")).raise_for_status()
        run.mark("orders-v2 stalled")
        await run.until(STALL_UNTIL)
        (await direct.put(f"{STALL_PATH}?seconds=0")).raise_for_status()
        run.mark("orders-v2 prompt")


async def load(gateway: str, orders: Service) -> Run:
    limits = httpx.Limits(max_connections=CLIENTS, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=gateway, timeout=CLIENT_TIMEOUT, limits=limits) as client:
        run = Run()
        clients = [client_loop(client, n, run) for n in range(CLIENTS)]
        await asyncio.wait_for(asyncio.gather(scenario(run, orders), *clients), LOAD_SECONDS + 60)
    return run


async def warm_up(gateway: str) -> None:
    """A few of each request, so pools, imports and caches exist before the first reading."""
    run, rng = Run(ids=itertools.count(1)), random.Random(-1)  # ids below MARKER_BASE
    async with httpx.AsyncClient(base_url=gateway, timeout=CLIENT_TIMEOUT) as client:
        for _ in range(5):
            calls = [send(client, next_call(rng, run), run) for _ in range(CLIENTS)]
            for outcome in await asyncio.gather(*calls):
                assert outcome.status is not None and outcome.status < 300, outcome


def quiet(pid: int, sockets: int) -> Footprint:
    """The footprint once at most `sockets` are open (idle pooled connections close after
    4 s, checked every 4 s), or as it is after SETTLE_SECONDS."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while (now := Footprint.of(pid)).sockets > sockets and time.monotonic() < deadline:
        time.sleep(0.25)
    return now


def summary(run: Run, before: Footprint, after: Footprint, max_in_flight: int) -> str:
    statuses = Counter(
        f"{o.call.kind} {o.status or 'none'}{' ' + o.error if o.error else ''}"
        f"{' cut short' if o.cut else ''}"
        for o in run.outcomes
    )
    latencies = [o.elapsed for o in run.outcomes]
    lines = [f"fault run: {len(run.outcomes)} requests from {CLIENTS} clients"]
    lines += [f"  {key}: {count}" for key, count in sorted(statuses.items())]
    lines.append(f"  fallbacks: {sum(o.fallback for o in run.outcomes)}")
    lines.append(
        f"  latency p50 {percentile(latencies, 0.5) * 1000:.0f} ms,"
        f" p99 {percentile(latencies, 0.99) * 1000:.0f} ms,"
        f" max {max(latencies, default=0) * 1000:.0f} ms"
    )
    lines.append(f"  legacy max in flight: {max_in_flight} (limit {LEGACY_LIMIT})")
    lines.append(f"  gateway before: {before}; after: {after}")
    lines.append("  events: " + ", ".join(f"{k} at {v:.1f}s" for k, v in run.events.items()))
    return "\n".join(lines)


# --- the run -------------------------------------------------------------------------------


def test_a_fault_run_keeps_every_promise(stack: Stack) -> None:
    # GIVEN the three processes, and the gateway warmed up, then quiet again
    idle = Footprint.of(stack.gateway_pid)
    asyncio.run(warm_up(stack.gateway))
    before = quiet(stack.gateway_pid, idle.sockets)
    # WHEN the load runs while orders-v2 dies and comes back, the legacy is slowed, and
    # orders-v2 answers too late
    run = asyncio.run(load(stack.gateway, stack.orders))
    after = quiet(stack.gateway_pid, before.sockets + SOCKET_MARGIN)
    max_in_flight = httpx.get(f"{stack.legacy}{STATS_PATH}").json()["max_in_flight"]
    print("\n" + summary(run, before, after, max_in_flight))
    outcomes = run.outcomes

    # THEN every request got a right answer or a clean gateway error, in time
    problems = [f"{o.call.method} {o.call.path}: {o.problem}" for o in outcomes if o.problem]
    assert problems == [], f"{len(problems)} bad answers, e.g. {problems[:5]}"
    # (a small answer whose upstream died after its head is one of those clean errors)
    assert_cut_only_at_the_kill(outcomes, run.events)
    # AND reads the dead orders-v2 dropped were served by the legacy, marked as fallbacks
    assert_fallbacks(outcomes, run.events)
    # AND no non-idempotent body reached an upstream twice, or at all when refused
    assert_at_most_once(outcomes, stack, run.events["orders-v2 back"])
    # AND the legacy's limit filled (quick 503s with Retry-After) but was never crossed
    overloaded = [o for o in outcomes if o.error == "overloaded"]
    assert overloaded, "the legacy's limit never filled: the slow window did not bite"
    assert max_in_flight <= LEGACY_LIMIT, f"the legacy had {max_in_flight} requests inside"
    # AND the gateway's sockets and memory came back
    assert after.sockets <= before.sockets + SOCKET_MARGIN, f"{before} -> {after}"
    assert after.rss_kb - before.rss_kb < RSS_GROWTH_KB, f"{before} -> {after}"


def assert_cut_only_at_the_kill(outcomes: list[Outcome], events: dict[str, float]) -> None:
    """An answer may be cut short after its head only when it streams (no length, or over
    what the gateway reads whole first) and orders-v2 was sending it when it was killed."""
    killing, killed = events["orders-v2 killing"], events["orders-v2 killed"]
    cut = [o for o in outcomes if o.cut]
    streamed_at_the_kill = [
        o
        for o in cut
        if (o.length is None or o.length > WHOLE_BELOW)
        and o.target == "orders-v2"
        and o.started <= killed
        and o.started + o.elapsed >= killing
    ]
    assert cut == streamed_at_the_kill, "answers cut short other than by the kill"


def assert_fallbacks(outcomes: list[Outcome], events: dict[str, float]) -> None:
    fallbacks = [o for o in outcomes if o.fallback]
    assert fallbacks, "no request was served by the fallback"
    wrong = [o for o in fallbacks if o.call.method != "GET" or o.target != "legacy"]
    assert wrong == [], "only reads may fall back, and only to the legacy"
    dead = [
        o
        for o in outcomes
        if events["orders-v2 killed"] <= o.started < events["orders-v2 restarting"]
        and o.call.kind == "read"
    ]
    assert any(o.fallback for o in dead), "no read fell back while orders-v2 was dead"
    # and once it is back, its breaker lets it serve again
    back = [o for o in outcomes if o.started > events["orders-v2 back"]]
    assert any(o.target == "orders-v2" and o.status == 200 for o in back), "never closed"


def assert_at_most_once(outcomes: list[Outcome], stack: Stack, back: float) -> None:
    journals = {name: read_journal(path) for name, path in stack.journals.items()}
    reached = journals["legacy"] + journals["orders-v2"]
    twice = [key for key, count in reached.items() if count > 1]
    assert twice == [], "non-idempotent bodies that reached an upstream more than once"
    posts = [o for o in outcomes if o.call.method == "POST"]
    for o in posts:
        key = (o.call.path.split("?")[0], o.call.sha)
        if o.status is not None and 200 <= o.status < 300:
            assert journals[o.target or ""][key] == 1, f"answered, not received once: {o}"
        if o.error in ("overloaded", "circuit_open"):
            assert reached[key] == 0, f"refused by the gateway yet sent: {o}"
    # the order lists read back from each upstream hold each created order once
    lists = {
        name: httpx.get(f"{url}/api/orders").json()["orders"]
        for name, url in [("legacy", stack.legacy), ("orders-v2", stack.orders.url)]
    }
    markers = Counter(
        o["user_id"] for orders in lists.values() for o in orders if o["user_id"] >= MARKER_BASE
    )
    assert [marker for marker, count in markers.items() if count > 1] == [], "orders twice"
    # and every order answered 201 is stored where it was answered (orders-v2 forgot those it
    # took before it was killed: its journal above has them)
    kept = {name: {o["user_id"] for o in orders} for name, orders in lists.items()}
    for o in posts:
        if o.status == 201 and (o.target == "legacy" or o.started > back):
            assert o.call.marker in kept[o.target or ""], f"answered 201, not stored: {o}"


# --- what a run found once: a small answer cut short after its head ------------------------


def test_an_answer_cut_short_by_its_upstream_is_a_clean_502_or_a_fallback(
    start_gateway: GatewayFactory, legacy_url: str
) -> None:
    # GIVEN a new service that sends the head of a 201 with a 193-byte body, then closes,
    # with the legacy as fallback
    with raw_tcp_upstream(answer_head_then_close) as url:
        gateway = start_gateway(
            f"""
targets: {{orders-v2: {{url: "{url}", breaker: off}}, legacy: {{url: "{legacy_url}"}}}}
routes: [{{name: orders, path: /api/orders, target: orders-v2, fallback: legacy}}]
"""
        )
        # WHEN an order is created, and the orders are read, through the gateway
        created = httpx.post(f"{gateway}/api/orders", json={"user_id": 1})
        read = httpx.get(f"{gateway}/api/orders")
    # THEN the creation gets a clean gateway error, as if the service died before its head
    assert created.status_code == 502
    assert created.json()["error"] == "upstream_unavailable"
    # AND the read is served by the fallback
    assert read.status_code == 200 and read.headers["x-gateway-fallback"] == "true"
    assert read.json()["served_by"] == "legacy"
