"""Shadow copies end to end: client -> gateway -> legacy, and a copy to a real candidate, on
loopback; the parity report read from `/_gateway/parity`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from gateway import shadowing
from gateway.app import create_app
from tests.parity.loopback import OrderService, parity, settled
from tests.support.fault_kit import percentile
from tests.support.gateways import GatewayFactory
from tests.support.servers import free_port, serve_in_thread, write_config
from tests.support.telemetry_kit import recorded

REQUESTS = 40


def table(legacy: str, candidate: str, shadow: str = "", timeout: str = "5s") -> str:
    return f"""
targets:
  legacy: {{url: "{legacy}"}}
  orders-v2: {{url: "{candidate}"}}
routes:
  - name: orders
    path: /api/orders
    target: legacy
    shadow:
      target: orders-v2
      timeout: {timeout}
      compare: {{noise: 100%, min_compared: 5}}
{shadow}
  - name: plain
    path: /plain
    rewrite: /api/orders
    target: legacy
"""


@pytest.fixture
def services() -> Iterator[tuple[OrderService, str, OrderService, str]]:
    legacy, candidate = OrderService(), OrderService()
    with ExitStack() as stack:
        legacy_url = stack.enter_context(serve_in_thread(legacy))
        candidate_url = stack.enter_context(serve_in_thread(candidate))
        yield legacy, legacy_url, candidate, candidate_url


def run(
    gateway: str,
    path: str = "/api/orders/7",
    count: int = REQUESTS,
    took: list[float] | None = None,
) -> list[bytes]:
    answers = []
    with httpx.Client(base_url=gateway, timeout=10) as client:
        for _ in range(count):
            started = time.perf_counter()
            answers.append(client.get(path).content)
            if took is not None:
                took.append(time.perf_counter() - started)
    return answers


def test_identical_services_converge_to_full_parity_with_their_stamps_as_noise(
    start_gateway: GatewayFactory, services: tuple[OrderService, str, OrderService, str]
) -> None:
    # GIVEN the same service as legacy and candidate, both stamping a time and a random id
    _, legacy_url, _, candidate_url = services
    gateway = start_gateway(table(legacy_url, candidate_url))

    # WHEN a bounded run goes through the shadowed route
    run(gateway)

    # THEN parity is 100% and the stamps are listed as noise
    entry = settled(gateway, "orders", REQUESTS)
    assert entry["counts"]["compared"] == REQUESTS
    assert entry["score"] == 100.0
    verdicts = {row["path"]: row["verdict"] for row in entry["paths"]}
    assert verdicts["body.meta.request_id"] == "noise"
    assert verdicts["body.meta.at"] == "noise"


FAULTS = {
    "drops": ("body.status", "missing", 0.0),
    "tenth": ("body.total", "value", 90.0),
    "reorder": ("body.items", "order", 0.0),
}


@pytest.mark.parametrize("mode", sorted(FAULTS), ids=sorted(FAULTS))
def test_a_divergent_candidate_is_named_by_path_kind_and_example(
    mode: str,
    start_gateway: GatewayFactory,
    services: tuple[OrderService, str, OrderService, str],
) -> None:
    # GIVEN a candidate with one fault
    legacy, legacy_url, candidate, candidate_url = services
    candidate.mode = mode
    gateway = start_gateway(table(legacy_url, candidate_url))

    # WHEN a bounded run goes through the shadowed route
    answers = run(gateway)

    # THEN every client answer is the legacy's (it has the status field)
    assert all(b'"status": "open"' in body for body in answers)
    # AND parity drops accordingly, the report naming the path, the kind and an example
    path, kind, expected = FAULTS[mode]
    entry = settled(gateway, "orders", REQUESTS)
    assert entry["score"] == pytest.approx(expected)
    row = next(r for r in entry["paths"] if r["path"] == path)
    assert (row["kind"], row["verdict"]) == (kind, "real")
    assert row["example"]["request"] == "GET /api/orders/7"


def test_a_slow_then_dead_candidate_never_reaches_the_client(
    start_gateway: GatewayFactory, services: tuple[OrderService, str, OrderService, str]
) -> None:
    # GIVEN a legacy with a fixed answer and a candidate 2 s slow, past the shadow's timeout
    legacy, legacy_url, candidate, candidate_url = services
    legacy.mode, candidate.mode = "fixed", "slow"
    events: list[str] = []
    candidate.events = events
    gateway = start_gateway(table(legacy_url, candidate_url, timeout="300ms"))

    # WHEN the same bounded run goes through the shadowed route and a route without shadow
    shadowed_took: list[float] = []
    plain_took: list[float] = []
    run(gateway, "/plain/7", count=3)  # warm-up: the legacy's pooled connection
    shadowed = run(gateway, count=10, took=shadowed_took)
    events.append("client done")
    plain = run(gateway, "/plain/7", count=10, took=plain_took)
    for name, took in (("shadowed", shadowed_took), ("plain", plain_took)):
        p50, p99 = percentile(took, 0.5) * 1e3, percentile(took, 0.99) * 1e3
        print(f"client latency, {name} route: p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # recorded

    # THEN every answer is byte-identical to the no-shadow run's, given before any copy's
    assert shadowed == plain
    assert events[0] == "client done"
    # AND the copies count as no_answer
    entry = settled(gateway, "orders", 10)
    assert entry["counts"]["no_answer"] == 10


def test_a_dead_candidate_counts_no_answer(
    start_gateway: GatewayFactory, services: tuple[OrderService, str, OrderService, str]
) -> None:
    # GIVEN a candidate nobody listens for
    _, legacy_url, _, _ = services
    gateway = start_gateway(table(legacy_url, f"http://127.0.0.1:{free_port()}"))

    # WHEN a bounded run goes through
    answers = run(gateway, count=10)

    # THEN the clients are answered by the legacy and every copy is no_answer
    assert all(b'"status": "open"' in body for body in answers)
    assert settled(gateway, "orders", 10)["counts"]["no_answer"] == 10


WRITES = {
    "never-post": ("never", "POST", False, False),
    "never-delete-with-key": ("never", "DELETE", True, False),
    "sandbox-put": ("sandbox", "PUT", False, True),
    "sandbox-delete": ("sandbox", "DELETE", False, True),
    "key-post-without": ("idempotency-key", "POST", False, False),
    "key-post-with": ("idempotency-key", "POST", True, True),
    "never-get": ("never", "GET", False, True),
}


@pytest.mark.parametrize("case", sorted(WRITES), ids=sorted(WRITES))
def test_writes_are_copied_only_as_the_spec_allows(
    case: str,
    start_gateway: GatewayFactory,
    services: tuple[OrderService, str, OrderService, str],
) -> None:
    # GIVEN a shadow with a `writes` rule
    writes, method, with_key, copied = WRITES[case]
    legacy, legacy_url, candidate, candidate_url = services
    shadow = f"      writes: {writes}"
    gateway = start_gateway(table(legacy_url, candidate_url, shadow=shadow))
    headers = {"idempotency-key": "k-1"} if with_key else {}

    # WHEN a request with that method goes through
    answer = httpx.request(method, f"{gateway}/api/orders/7", headers=headers, content=b"{}")

    # THEN the client is answered; the candidate got a copy marked as one, or nothing
    assert answer.status_code == 200
    entry = settled(gateway, "orders", 1, within=3.0 if copied else 0.3)
    assert (entry["counts"]["compared"] == 1) is copied
    assert [(m, h.get("x-gateway-shadow")) for m, h in candidate.hits] == (
        [(method, "1")] if copied else []
    )


SECRETS = ("Bearer sekrit-token", "session=sekrit-cookie", "sekrit-query")


def test_no_credential_appears_in_the_parity_report(
    start_gateway: GatewayFactory, services: tuple[OrderService, str, OrderService, str]
) -> None:
    # GIVEN a divergent candidate and requests carrying credentials in headers and query
    _, legacy_url, candidate, candidate_url = services
    candidate.mode = "drops"
    gateway = start_gateway(table(legacy_url, candidate_url))
    headers = {"authorization": SECRETS[0], "cookie": SECRETS[1]}

    # WHEN they go through
    for _ in range(6):
        httpx.get(f"{gateway}/api/orders/7?token={SECRETS[2]}", headers=headers)
    settled(gateway, "orders", 6)

    # THEN the report names the difference, and no secret
    text = httpx.get(f"{gateway}/_gateway/parity").text
    assert "body.status" in text
    assert not [s for s in ("sekrit", "Bearer") if s in text]


def test_the_report_refuses_a_route_without_shadow(
    start_gateway: GatewayFactory, services: tuple[OrderService, str, OrderService, str]
) -> None:
    # GIVEN a gateway with one shadowed route
    _, legacy_url, _, candidate_url = services
    gateway = start_gateway(table(legacy_url, candidate_url))

    # WHEN the report of another route is asked for
    answer = httpx.get(f"{gateway}/_gateway/parity", params={"route": "plain"})

    # THEN it says which routes have one
    assert answer.status_code == 404
    assert answer.json()["error"] == "no_shadow"
    assert parity(gateway, "orders")["counts"]["compared"] == 0


def test_copies_past_the_bound_are_dropped_and_shutdown_does_not_wait_for_the_rest(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    services: tuple[OrderService, str, OrderService, str],
) -> None:
    # GIVEN room for 2 copies in flight, and a candidate slower than the shutdown's grace
    monkeypatch.setattr(shadowing, "MAX_COPIES", 2)
    monkeypatch.setattr(shadowing, "SHUTDOWN_GRACE", 0.2)
    _, legacy_url, candidate, candidate_url = services
    candidate.mode, candidate.delay = "slow", 1.5
    app = create_app(write_config(tmp_path, table(legacy_url, candidate_url, timeout="60s")))
    with serve_in_thread(app) as gateway:
        # WHEN 6 requests go through while the first copies are still waiting
        run(gateway, count=6)
        entry = settled(gateway, "orders", 4)

    # THEN 4 copies were dropped, and the 2 in flight were cancelled at shutdown
    assert entry["counts"]["dropped"] == 4
    assert all(task.done() for task in app.state.shadowing.tasks)
    assert app.state.shadowing.in_flight["orders"] == 0
    assert app.state.shadowing.copies[("orders", "compared")] == 0


def test_the_metrics_count_copies_by_outcome_and_mismatches(
    start_gateway: GatewayFactory, services: tuple[OrderService, str, OrderService, str]
) -> None:
    # GIVEN a candidate that drops a field
    _, legacy_url, candidate, candidate_url = services
    candidate.mode = "drops"
    gateway = start_gateway(table(legacy_url, candidate_url))

    # WHEN a bounded run goes through
    run(gateway, count=10)
    settled(gateway, "orders", 10)

    # THEN /_gateway/metrics has the copies, the mismatches and the score
    text = httpx.get(f"{gateway}/_gateway/metrics").text
    assert 'gateway_shadow_copies_total{route="orders",outcome="compared"} 10' in text
    assert 'gateway_parity_mismatches_total{route="orders"} 10' in text
    assert 'gateway_parity_score{route="orders"} 0' in text


def test_the_copy_s_span_joins_the_client_s_trace(
    start_gateway: GatewayFactory, services: tuple[OrderService, str, OrderService, str]
) -> None:
    # GIVEN a traced gateway with a shadowed route
    _, legacy_url, candidate, candidate_url = services
    spans = recorded()
    gateway = start_gateway(table(legacy_url, candidate_url), spans.telemetry)

    # WHEN one request goes through and its copy is compared
    run(gateway, count=1)
    settled(gateway, "orders", 1)

    # THEN the candidate's client span has the request's server span as parent
    server = spans.span("SERVER")
    clients = [s for s in spans.spans() if s.kind.name == "CLIENT"]
    assert len(clients) >= 2  # the legacy's, the candidate's (and maybe a noise call's)
    assert all(s.parent is not None and s.parent.span_id == server.context.span_id for s in clients)
    assert all(s.context.trace_id == server.context.trace_id for s in clients)
    assert candidate.hits[0][1]["traceparent"].split("-")[1] == f"{server.context.trace_id:032x}"


def test_reset_starts_the_route_afresh_after_a_fix(
    start_gateway: GatewayFactory, services: tuple[OrderService, str, OrderService, str]
) -> None:
    # GIVEN a candidate that dropped a field, then was fixed
    _, legacy_url, candidate, candidate_url = services
    candidate.mode = "drops"
    gateway = start_gateway(table(legacy_url, candidate_url))
    run(gateway, count=10)
    before = settled(gateway, "orders", 10)
    candidate.mode = "legacy"

    # WHEN the route's parity is reset and traffic flows again
    reset = httpx.post(f"{gateway}/_gateway/parity/reset", params={"route": "orders"})
    refused = httpx.post(f"{gateway}/_gateway/parity/reset", params={"route": "plain"})
    run(gateway, count=10)
    after = settled(gateway, "orders", 10)

    # THEN the score went from 0% back to 100%; a route without shadow is refused
    assert (before["score"], after["score"]) == (0.0, 100.0)
    assert (reset.status_code, refused.status_code) == (200, 404)
    assert after["counts"]["compared"] == 10


def test_the_dashboard_shows_the_route_s_parity_and_its_top_difference(
    start_gateway: GatewayFactory, services: tuple[OrderService, str, OrderService, str]
) -> None:
    # GIVEN a candidate that drops a field, behind a shadowed route
    _, legacy_url, candidate, candidate_url = services
    candidate.mode = "drops"
    gateway = start_gateway(table(legacy_url, candidate_url))

    # WHEN a bounded run goes through and the page asks for its numbers
    run(gateway, count=10)
    settled(gateway, "orders", 10)
    page = httpx.get(f"{gateway}/_gateway/dashboard.json", timeout=5).json()

    # THEN the shadowed route shows the score and the field that differs; the plain one none
    views = {view["name"]: view for view in page["routes"]}
    assert views["orders"]["parity"] == {"score": 0.0, "top_difference": "body.status"}
    assert views["plain"]["parity"] is None
