"""The rollout controller: judgements against a real gateway, the numbers, AWS sources, infra.

The end-to-end runs put a real gateway (uvicorn on loopback, watching its file every 100 ms)
in front of the legacy stub and orders-v2, drive bounded traffic between judgements, and move
time with `--now` instead of sleeping through intervals.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.stub import Stubber

from gateway.app import create_app
from gateway.config.load import load_config, parse_config
from gateway.config.model import CounterSnapshot, RolloutSpec, RolloutState
from gateway.rollouts.controller import Kind, Outcome, add_rollout_verbs, judge, watch
from gateway.rollouts.edit import all_to, edit_text, shift_to
from gateway.rollouts.lambda_entry import RolloutFailed, handler
from gateway.rollouts.metrics import CloudWatchSource, Window, delta, quantile
from tests.support.aws import remote_table, remote_text
from tests.support.servers import free_port, serve_in_thread, write_config
from tests.test_infra import INFRA, RESOURCES, TEMPLATE, Stack

T0 = 1_700_000_040.0  # a whole minute, as CloudWatch windows are
INF = float("inf")
HOUR = 3600
ROUTES = """\
# The orders migration; the controller's edits keep every comment here.
targets:
  legacy: {{url: "{legacy}"}}  # the monolith
  orders-v2: {{url: "{canary}"}}
routes:
  # Moved step by step by `gateway rollout`.
  - name: orders
    path: /api/orders
    split: {{legacy: 100, orders-v2: 0}}  # the controller's to change
    rollout:
      target: orders-v2
      steps: [10, 50, 100]  # percent of the route
      interval: 1s
      min_requests: 20
      max_error_rate: 5%
  # Everything else stays on the monolith.
  - name: everything-else
    path: /
    target: legacy
"""


def gateway(*argv: str) -> int:
    """Run a `gateway` verb as the CLI would (cli.py wires the same registration)."""
    top = argparse.ArgumentParser(prog="gateway")
    add_rollout_verbs(top.add_subparsers(required=True))
    args = top.parse_args(argv)
    code: int = args.run(args)
    return code


@dataclass(frozen=True)
class Canary:
    url: str
    path: Path

    def rollout(self, now: float, metrics: str | None = None) -> int:
        return gateway(
            "rollout", str(self.path), "orders", "--metrics", metrics or self.url, "--now", str(now)
        )

    def state(self) -> RolloutState:
        route = next(r for r in load_config(str(self.path)).routes if r.name == "orders")
        assert route.rollout is not None
        return route.rollout.state

    def drive(self, canary_requests: int, limit: int = 3000) -> Counter[str]:
        """GET /api/orders until orders-v2 has answered CANARY_REQUESTS (at most LIMIT in all)."""
        served: Counter[str] = Counter()
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while served["orders-v2"] < canary_requests and served.total() < limit:
                served[client.get("/api/orders").headers["x-gateway-target"]] += 1
        assert served["orders-v2"] >= canary_requests, served
        return served

    def serving(self, weight: float) -> None:
        """Wait (bounded) until the gateway has reloaded the table giving orders-v2 WEIGHT."""
        deadline = time.monotonic() + 10
        split: dict[str, float] = {}
        while time.monotonic() < deadline:
            routes = httpx.get(f"{self.url}/_gateway/routes").json()["routes"]
            split = next(r["split"] for r in routes if r["name"] == "orders")
            if split.get("orders-v2") == weight:
                return
            time.sleep(0.05)
        raise AssertionError(f"the gateway never served orders-v2 at {weight}%: {split}")


@pytest.fixture
def canary(
    tmp_path: Path, legacy_url: str, orders_v2_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Canary]:
    monkeypatch.setenv("GATEWAY_CONFIG_TTL", "0.1")
    monkeypatch.setenv("GATEWAY_ACCESS_LOG", "off")
    path = Path(write_config(tmp_path, ROUTES.format(legacy=legacy_url, canary=orders_v2_url)))
    with serve_in_thread(create_app(str(path))) as url:
        yield Canary(url, path)


@pytest.fixture
def failing_orders_v2(orders_v2_url: str) -> Iterator[str]:
    """orders-v2 (shared by the session) answers 500 once told to, and never after the test."""
    try:
        yield orders_v2_url
    finally:
        httpx.delete(f"{orders_v2_url}/_fault").raise_for_status()


def comments(text: str) -> list[str]:
    return [line[line.index("#") :] for line in text.splitlines() if "#" in line]


# --- end to end: a real gateway, real upstreams ------------------------------------------------


def test_healthy_canary_is_promoted_step_by_step_and_the_file_keeps_its_comments(
    canary: Canary, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a route with a rollout and no state yet
    original = canary.path.read_text()
    # WHEN the controller judges, with healthy traffic between judgements, a step per second
    codes = [canary.rollout(T0)]
    for step, weight in enumerate((10, 50, 100), start=1):
        canary.serving(weight)
        canary.drive(20)
        codes.append(canary.rollout(T0 + 2 * step))
    codes.append(canary.rollout(T0 + 10))
    lines = capsys.readouterr().out.splitlines()
    # THEN it started, advanced twice, promoted, and then left the finished rollout alone
    assert codes == [0, 0, 0, 0, 0]
    assert lines[0] == "orders: started at step 1 (10%): orders-v2 0% -> 10%"
    assert lines[1].startswith("orders: advanced to step 2 (50%) after step 1 (10%): ")
    assert lines[2].startswith("orders: advanced to step 3 (100%) after step 2 (50%): ")
    assert lines[3].startswith("orders: promoted orders-v2 to 100% after step 3 (100%): ")
    assert re.search(r": \d+ requests, error rate 0%, p99 [\d.]+m?s \(legacy: ", lines[1])
    assert lines[4] == lines[3]
    # AND the table says so, all of the route is on orders-v2, and every comment is still there
    final = canary.path.read_text()
    state = canary.state()
    assert (state.status, state.step, state.snapshot) == ("done", 2, ())
    assert "split: {legacy: 0, orders-v2: 100}  # the controller's to change" in final
    assert comments(final) == comments(original)
    changed = [d for d in difflib.ndiff(original.split("\n"), final.split("\n")) if d[0] in "+-"]
    assert changed[:2] == [
        "-     split: {legacy: 100, orders-v2: 0}  # the controller's to change",
        "+     split: {legacy: 0, orders-v2: 100}  # the controller's to change",
    ]
    assert changed[2] == "+       state:"
    assert all(line.startswith("+         ") for line in changed[3:])


def test_canary_failing_at_the_third_step_is_rolled_back_to_legacy(
    canary: Canary, failing_orders_v2: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a rollout healthy through its first two steps
    assert canary.rollout(T0) == 0
    for step, weight in enumerate((10, 50), start=1):
        canary.serving(weight)
        canary.drive(20)
        assert canary.rollout(T0 + 2 * step) == 0
    canary.serving(100)
    # WHEN orders-v2 starts answering 500 at the third step, and the controller judges
    httpx.put(f"{failing_orders_v2}/_fault", json={"fail_rate": 1.0}).raise_for_status()
    served = canary.drive(20)
    code = canary.rollout(T0 + 6)
    verdict = capsys.readouterr().out.splitlines()[-1]
    # THEN it exits 3, naming the threshold and the numbers, and all traffic is back on legacy
    assert code == 3
    assert verdict == (
        f"orders: rolled back at step 3 (100%): error rate 100% > 5% over {served['orders-v2']} "
        "requests; all traffic to legacy"
    )
    state = canary.state()
    assert (state.status, state.step, state.verdict) == ("rolled_back", 2, verdict[8:])
    canary.serving(0)
    with httpx.Client(base_url=canary.url) as client:
        targets = {client.get("/api/orders").headers["x-gateway-target"] for _ in range(30)}
    assert targets == {"legacy"}
    # AND a later run leaves it alone, still saying why (exit 3)
    assert canary.rollout(T0 + 8) == 3
    assert capsys.readouterr().out.splitlines() == [verdict]


@pytest.mark.parametrize(
    ("canary_requests", "later", "why"),
    [
        (5, 2.0, r"waiting at step 1 \(10%\): [5-9] of 20 requests so far; "),
        (20, 0.5, r"waiting at step 1 \(10%\): 500ms of 1s elapsed; \d+ requests, "),
    ],
    ids=["too-few-requests", "interval-not-over"],
)
def test_step_waits_without_enough_requests_or_time(
    canary: Canary,
    canary_requests: int,
    later: float,
    why: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a started rollout, and some traffic since
    assert canary.rollout(T0) == 0
    canary.serving(10)
    canary.drive(canary_requests, limit=canary_requests * 10 + 200)
    before = canary.path.read_bytes()
    # WHEN the controller judges too early or on too few requests
    code = canary.rollout(T0 + later)
    # THEN it waits (exit 0), says why with the numbers, and changes nothing
    assert code == 0
    assert re.match(f"orders: {why}", capsys.readouterr().out.splitlines()[-1])
    assert canary.path.read_bytes() == before
    assert canary.state().step == 0


@pytest.mark.parametrize("started", [False, True], ids=["before-start", "during-a-step"])
def test_unreachable_metrics_exit_1_and_leave_the_file_alone(
    canary: Canary, started: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a rollout, started or not, and a metrics URL where nothing listens
    if started:
        assert canary.rollout(T0) == 0
        canary.serving(10)
        canary.drive(20)
    before = canary.path.read_bytes()
    nowhere = f"http://127.0.0.1:{free_port()}"
    # WHEN the controller judges with it
    code = canary.rollout(T0 + 2, metrics=nowhere)
    # THEN it exits 1 saying what it could not read, and the file is untouched
    err = capsys.readouterr().err
    assert code == 1
    assert f"cannot read {nowhere}/_gateway/metrics" in err and "nothing changed" in err
    assert canary.path.read_bytes() == before


def test_a_broken_table_is_an_error_not_an_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a route table with a typo
    path = Path(write_config(tmp_path, ROUTES.format(legacy="http://a", canary="http://b")))
    path.write_text(path.read_text().replace("split:", "spilt:"))
    before = path.read_bytes()
    # WHEN the controller is run on it
    code = gateway("rollout", str(path), "orders", "--metrics", "http://127.0.0.1:9", "--now", "1")
    # THEN it exits 1 naming the problem, and writes nothing
    assert code == 1
    assert "spilt" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_watch_stops_at_once_on_a_finished_rollout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a rollout already rolled back
    text = ROUTES.format(legacy="http://a", canary="http://b") + ""
    text = text.replace(
        "      max_error_rate: 5%\n",
        "      max_error_rate: 5%\n      state: {status: rolled_back, verdict: 'it failed'}\n",
    )
    path = write_config(tmp_path, text)
    # WHEN the controller watches it
    code = gateway("rollout", path, "orders", "--metrics", "http://127.0.0.1:9", "--watch")
    # THEN it prints the verdict (a time on each line, the steps under it) and stops with
    # exit 3, without reading any metrics
    assert code == 3
    verdict, steps = (line.split("  ", 1)[1] for line in capsys.readouterr().out.splitlines())
    assert verdict == "orders: it failed"
    assert steps.startswith("steps: 10% 50% 100% (rolled_back)")


def test_watch_judges_until_the_rollout_finishes() -> None:
    # GIVEN judgements that wait twice, then promote
    verdicts: Iterator[Kind] = iter(["waiting", "waiting", "promoted"])
    naps: list[float] = []

    def judge_once() -> Outcome:
        kind = next(verdicts)
        return Outcome("orders", kind, kind)

    # WHEN watched every 30 s (with a recorded sleep, not a real one)
    code = watch(judge_once, 30.0, naps.append)
    # THEN it slept between judgements and stopped at the promotion
    assert (code, naps) == (0, [30.0, 30.0])


FLOW_CRLF = (
    "targets: {legacy: {url: 'http://a'}, orders-v2: {url: 'http://b'}}\r\n"
    "routes:\r\n"
    "  - name: orders  # flow-style rollout, CRLF line ends\r\n"
    "    path: /api/orders\r\n"
    "    split: {legacy: 100, orders-v2: 0}\r\n"
    "    rollout: {target: orders-v2, steps: [25, 100], interval: 1s}  # canary\r\n"
)


def test_state_round_trips_through_a_flow_style_rollout_with_crlf_line_ends() -> None:
    # GIVEN a table with a one-line rollout and Windows line ends
    snapshot = (CounterSnapshot("orders-v2", 3, 1, ((0.005, 2), (INF, 3))),)
    # WHEN the controller starts it, then rolls it back
    started = edit_text(
        FLOW_CRLF,
        "orders",
        shift_to("orders-v2", 25).with_state(RolloutState(0, T0, "running", "go", snapshot)),
    )
    back = edit_text(
        started,
        "orders",
        all_to("legacy").with_state(RolloutState(0, T0, "rolled_back", "no: 9% > 1%")),
    )
    # THEN each state reads back as written, the line ends and other lines stay as they were
    first = parse_config(started, "t").routes[0]
    last = parse_config(back, "t").routes[0]
    assert first.rollout is not None and last.rollout is not None
    assert first.rollout.state == RolloutState(0, T0, "running", "go", snapshot)
    assert last.rollout.state == RolloutState(0, T0, "rolled_back", "no: 9% > 1%")
    assert (first.split, last.split) == (
        (("legacy", 75), ("orders-v2", 25)),
        (("legacy", 100), ("orders-v2", 0)),
    )
    assert back.count("\r\n") == back.count("\n") == 6
    assert back.split("\r\n")[:4] == FLOW_CRLF.split("\r\n")[:4]
    assert back.split("\r\n")[5].endswith("# canary")


# --- the numbers --------------------------------------------------------------------------------


def histogram(*counts: float) -> tuple[tuple[float, float], ...]:
    """Cumulative buckets at the gateway's first bounds: 5ms, 10ms, 25ms, 50ms, then +Inf."""
    return tuple(zip((0.005, 0.01, 0.025, 0.05, INF), counts, strict=True))


@pytest.mark.parametrize(
    ("then", "now", "p99"),
    [
        (histogram(0, 0, 0, 0, 0), histogram(0, 0, 100, 100, 100), 0.01 + 0.015 * 99 / 100),
        (histogram(0, 0, 0, 0, 1000), histogram(100, 100, 100, 100, 1100), 0.005 * 99 / 100),
        (histogram(0, 0, 0, 0, 0), histogram(0, 0, 0, 50, 100), 0.05),
        (histogram(0, 0, 0, 0, 500), histogram(0, 100, 100, 100, 100), 0.005 + 0.005 * 99 / 100),
    ],
    ids=["inside-one-bucket", "old-slow-requests-ignored", "rank-in-inf-bucket", "counter-reset"],
)
def test_p99_comes_from_bucket_deltas_interpolated_inside_the_bucket(
    then: tuple[tuple[float, float], ...], now: tuple[tuple[float, float], ...], p99: float
) -> None:
    # GIVEN the histogram at the step's start and now
    before = CounterSnapshot("orders-v2", then[-1][1], 0, then)
    after = CounterSnapshot("orders-v2", now[-1][1], 0, now)
    # WHEN the step's numbers are computed
    window = delta(after, before)
    # THEN the p99 is that of the step's requests only
    assert window.p99 == pytest.approx(p99)
    assert window.requests == (now[-1][1] - then[-1][1] if now[-1][1] >= then[-1][1] else 100)


def test_no_requests_means_no_p99() -> None:
    # GIVEN an empty histogram, WHEN its p99 is asked, THEN there is none
    assert quantile(0.99, histogram(0, 0, 0, 0, 0)) is None
    assert delta(CounterSnapshot("x"), None) == Window(0, 0, None)


SPEC = RolloutSpec(
    target="orders-v2",
    steps=(1, 5, 25, 100),
    interval=60,
    min_requests=100,
    max_error_rate=0.01,
    state=RolloutState(step=2, started_at=T0),
)


@pytest.mark.parametrize(
    ("spec", "canary", "base", "expected"),
    [
        (
            SPEC,
            Window(240, 30, 0.02),
            Window(720, 0, 0.02),
            "rolled back at step 3 (25%): error rate 12.5% > 1% over 240 requests; "
            "all traffic to legacy",
        ),
        (
            replace(SPEC, max_p99=0.8),
            Window(240, 0, 1.2),
            Window(720, 0, 0.02),
            "rolled back at step 3 (25%): p99 1.2s > 800ms over 240 requests; "
            "all traffic to legacy",
        ),
        (
            replace(SPEC, max_p99_ratio=1.5),
            Window(240, 0, 0.09),
            Window(720, 0, 0.05),
            "rolled back at step 3 (25%): p99 90ms > legacy p99 50ms x 1.5 over 240 requests; "
            "all traffic to legacy",
        ),
    ],
    ids=["error-rate", "absolute-p99", "p99-against-baseline"],
)
def test_a_breach_rolls_back_naming_the_threshold_and_the_numbers(
    spec: RolloutSpec, canary: Window, base: Window, expected: str
) -> None:
    # GIVEN a step's numbers over a threshold, WHEN judged before the interval is even over
    decision = judge(spec, "legacy", canary, base, T0 + 1)
    # THEN it is a rollback, and the verdict says which threshold and by how much
    assert (decision.action, decision.verdict) == ("rollback", expected)


@pytest.mark.parametrize(
    ("canary", "base", "action"),
    [
        (Window(99, 99, 5.0), Window(900, 0, 0.01), "wait"),
        (Window(240, 0, 0.5), Window(0, 0, None), "advance"),
        (Window(240, 0, 0.5), Window(99, 0, 0.01), "advance"),
        (Window(240, 0, None), Window(900, 0, 0.01), "wait"),
    ],
    ids=[
        "breach-below-min-requests",
        "no-baseline-traffic",
        "little-baseline-traffic",
        "no-p99-yet",
    ],
)
def test_no_rollback_without_enough_data(canary: Window, base: Window, action: str) -> None:
    # GIVEN a spec with a p99 relative to the baseline, and a step whose interval is over
    spec = replace(SPEC, max_p99_ratio=1.5)
    # WHEN a step with too little data is judged
    decision = judge(spec, "legacy", canary, base, T0 + 61)
    # THEN it never rolls back on it
    assert decision.action == action, decision.verdict


# --- AWS: CloudWatch, S3 and SSM on moto's server ------------------------------------------------


def put_emf(namespace: str, at: float, target: str, requests: int, errors: int) -> None:
    """What the gateway's EMF lines become in CloudWatch: one datapoint per request."""
    dimensions = [{"Name": "route", "Value": "orders"}, {"Name": "target", "Value": target}]
    stamp = datetime.fromtimestamp(at, UTC)
    data = [
        {"MetricName": name, "Dimensions": dimensions, "Timestamp": stamp, "Values": values}
        for name, values in (
            ("Requests", [1.0] * requests),
            ("Errors5xx", [1.0] * errors + [0.0] * (requests - errors)),
            ("Latency", [12.0] * requests),
        )
    ]
    boto3.client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=data)


def test_cloudwatch_source_sums_the_step_window_by_route_and_target(aws: str) -> None:
    # GIVEN EMF metrics for both targets, some before the step began
    put_emf("Gw1", T0 - 30, "orders-v2", 50, 50)
    put_emf("Gw1", T0 + 30, "orders-v2", 120, 6)
    put_emf("Gw1", T0 + 90, "orders-v2", 120, 9)
    put_emf("Gw1", T0 + 90, "legacy", 300, 1)
    # WHEN the step [T0, T0 + 2 min] is read through the CloudWatch source (moto has no p99)
    source = CloudWatchSource("Gw1")
    windows = source.window("orders", ["orders-v2", "legacy"], T0, T0 + 120, p99=False)
    # THEN each target's requests and 5xx are the window's sums
    assert (windows["orders-v2"].requests, windows["orders-v2"].errors) == (240, 15)
    assert (windows["legacy"].requests, windows["legacy"].errors) == (300, 1)
    assert windows["orders-v2"].error_rate == pytest.approx(15 / 240)


def test_cloudwatch_p99_is_the_latency_percentile_of_the_window_in_seconds() -> None:
    # GIVEN CloudWatch answering a p99 of 250 ms (moto computes no percentiles, so a stubbed
    # client stands in, and checks the exact request)
    client = boto3.client("cloudwatch", region_name="us-east-1")
    dimensions = [{"Name": "route", "Value": "orders"}, {"Name": "target", "Value": "orders-v2"}]
    queries = [
        {
            "Id": query,
            "MetricStat": {
                "Metric": {"Namespace": "Gw", "MetricName": metric, "Dimensions": dimensions},
                "Period": 180,
                "Stat": stat,
            },
        }
        for query, metric, stat in (
            ("r0", "Requests", "Sum"),
            ("e0", "Errors5xx", "Sum"),
            ("p0", "Latency", "p99"),
        )
    ]
    answers = {"r0": [240.0], "e0": [3.0], "p0": [250.0]}
    results = [{"Id": q, "Values": v, "StatusCode": "Complete"} for q, v in answers.items()]
    window = (datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0 + 180, UTC))
    with Stubber(client) as stub:
        stub.add_response(
            "get_metric_data",
            {"MetricDataResults": results},
            {"MetricDataQueries": queries, "StartTime": window[0], "EndTime": window[1]},
        )
        # WHEN a step from T0 to T0 + 2.5 min is read
        source = CloudWatchSource("Gw", client)
        windows = source.window("orders", ["orders-v2"], T0, T0 + 150)
        stub.assert_no_pending_responses()
    # THEN one period spans the whole window (in whole minutes), and the p99 is in seconds
    assert windows == {"orders-v2": Window(240, 3, 0.25)}


def remote_state(spec: str) -> tuple[RolloutState, dict[str, float]]:
    text = remote_text(spec)
    route = parse_config(text, spec).routes[0]
    assert route.rollout is not None and "# the monolith" in text
    return route.rollout.state, dict(route.split)


def tick(at: float) -> dict[str, object]:
    return handler({"time": datetime.fromtimestamp(at, UTC).isoformat()}, None)


@pytest.mark.parametrize("kind", ["s3", "ssm"], ids=["s3", "ssm"])
def test_scheduled_controller_writes_its_state_back_and_a_fresh_one_resumes_there(
    aws: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the table in S3 or SSM, the metrics in CloudWatch, the controller's environment
    t0 = T0 + HOUR * (1 if kind == "s3" else 2)  # moto's CloudWatch mixes namespaces up
    text = ROUTES.format(legacy="http://10.0.0.1", canary="http://10.0.0.2")
    spec = remote_table(kind, f"resume-{kind}", text.replace("interval: 1s", "interval: 2m"))
    monkeypatch.setenv("ROLLOUT_CONFIG", spec)
    monkeypatch.setenv("METRICS", f"cloudwatch:Gw-{kind}")
    monkeypatch.delenv("ROLLOUT_ROUTES", raising=False)
    # WHEN one scheduled run starts the rollout, traffic flows, and later runs (each a cold
    # start: nothing kept in memory) judge it
    started = tick(t0)
    first = remote_state(spec)
    put_emf(f"Gw-{kind}", t0 + 30, "orders-v2", 30, 0)
    put_emf(f"Gw-{kind}", t0 + 30, "legacy", 270, 0)
    early = tick(t0 + 60)
    advanced = tick(t0 + 150)
    second = remote_state(spec)
    after = tick(t0 + 170)
    # THEN the state went back each time, and each run carried on from the stored step
    assert started == {"judged": [{"route": "orders", "outcome": "started", "verdict": (
        "started at step 1 (10%): orders-v2 0% -> 10%"
    )}]}  # fmt: skip
    assert (first[0].step, first[0].started_at, first[1]["orders-v2"]) == (0, t0, 10)
    assert early["judged"] == [{"route": "orders", "outcome": "waiting", "verdict": (
        "waiting at step 1 (10%): 1m of 2m elapsed; 30 requests, error rate 0%, p99 - "
        "(legacy: 270 requests, error rate 0%, p99 -)"
    )}]  # fmt: skip
    assert str(advanced).startswith("{'judged': [{'route': 'orders', 'outcome': 'advanced'")
    assert (second[0].step, second[0].started_at, second[1]["orders-v2"]) == (1, t0 + 150, 50)
    assert "waiting at step 2 (50%): 0 of 20 requests" in str(after)


def test_a_route_that_cannot_be_judged_fails_the_invocation_after_the_others(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a table with one rollout, and the controller asked for it and for an unknown route
    text = ROUTES.format(legacy="http://10.0.0.1", canary="http://10.0.0.2")
    spec = remote_table("s3", "unknown-route", text)
    monkeypatch.setenv("ROLLOUT_CONFIG", spec)
    monkeypatch.setenv("METRICS", "cloudwatch:Gw")
    monkeypatch.setenv("ROLLOUT_ROUTES", "orders, nope")
    # WHEN it runs THEN the invocation fails naming the route, and the other one was judged
    with pytest.raises(RolloutFailed, match="nope: no route 'nope'"):
        tick(T0)
    state, split = remote_state(spec)
    assert (state.status, state.started_at, split["orders-v2"]) == ("running", T0, 10)


def test_infra_controller_runs_one_scheduled_pass_from_the_environment(
    aws: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN infra/controller.py and the environment the template gives the function
    text = ROUTES.format(legacy="http://10.0.0.1", canary="http://10.0.0.2")
    monkeypatch.setenv("ROLLOUT_CONFIG", remote_table("ssm", "infra-controller", text))
    monkeypatch.setenv("METRICS", "cloudwatch:Gw")
    spec = importlib.util.spec_from_file_location("infra_controller", INFRA / "controller.py")
    assert spec is not None and spec.loader is not None
    controller = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(controller)
    # WHEN it runs once, as a cron job would
    code = controller.main()
    # THEN it judged every unfinished rollout (here: started the one there is)
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("orders: started at step 1 (10%): orders-v2 0% -> 10%\n")
    assert json.loads(out.split("\n", 1)[1])["judged"][0]["outcome"] == "started"
    assert controller.handler is handler


# --- infra/template.yaml: the scheduled controller -----------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "created"),
    [
        ({}, False),
        (
            {
                "RolloutControllerEnabled": "true",
                "ConfigBucket": "acme",
                "PrivateRouteTableIds": "r",
            },
            True,
        ),
        ({"ConfigBucket": "acme", "PrivateRouteTableIds": "r"}, False),
    ],
    ids=["default-off", "enabled", "not-enabled"],
)
def test_controller_exists_only_when_enabled(overrides: dict[str, str], created: bool) -> None:
    # GIVEN the parameters, WHEN the conditions are evaluated
    stack = Stack(**overrides)
    # THEN the function, its role and its log group exist together, or not at all
    assert {stack.creates(name) for name in ("RolloutController", "RolloutControllerRole")} == {
        created
    }
    assert stack.creates("RolloutControllerLogGroup") == created


def controller_grants(stack: Stack) -> dict[str, dict[str, object]]:
    [policy] = stack.value(RESOURCES["RolloutControllerRole"]["Properties"]["Policies"])
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


@pytest.mark.parametrize(
    ("overrides", "config", "sid", "actions", "resource"),
    [
        (
            {"ConfigBucket": "acme", "ConfigKey": "prod/routes.yaml"},
            "s3://acme/prod/routes.yaml",
            "EditRouteTableInS3",
            ["s3:GetObject", "s3:PutObject"],
            "arn:aws:s3:::acme/prod/routes.yaml",
        ),
        (
            {"ConfigParameterName": "/gateway/routes"},
            "ssm:/gateway/routes",
            "EditRouteTableInSsm",
            ["ssm:GetParameter", "ssm:PutParameter"],
            "arn:aws:ssm:eu-central-1:123456789012:parameter/gateway/routes",
        ),
    ],
    ids=["s3", "ssm"],
)
def test_controller_may_edit_only_the_route_table_and_read_metrics(
    overrides: dict[str, str], config: str, sid: str, actions: list[str], resource: str
) -> None:
    # GIVEN a deployment with the controller on and the table in S3 or SSM
    stack = Stack(RolloutControllerEnabled="true", **overrides)
    function = stack.value(RESOURCES["RolloutController"]["Properties"])
    grants = controller_grants(stack)
    # THEN it runs the rollout handler on the table the gateway reads, with CloudWatch metrics
    assert function["Handler"] == "gateway.rollouts.lambda_entry.handler"
    assert function["CodeUri"] == RESOURCES["GatewayFunction"]["Properties"]["CodeUri"]
    assert function["Environment"]["Variables"]["ROLLOUT_CONFIG"] == config
    assert function["Environment"]["Variables"]["METRICS"] == "cloudwatch:StranglerGateway"
    # AND one at a time, every minute, never retried into a second judgement
    assert function["ReservedConcurrentExecutions"] == 1
    assert function["Events"]["EveryMinute"]["Properties"]["Schedule"] == "rate(1 minute)"
    assert function["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    # AND its role edits that one object or parameter, appends to the migration ledger beside
    # it, and reads metrics
    ledger = sid.replace("EditRouteTableIn", "AppendMigrationLedgerIn")
    assert set(grants) == {"WriteOwnLogs", "ReadGatewayMetrics", sid, ledger}
    assert (grants[sid]["Action"], grants[sid]["Resource"]) == (actions, resource)
    assert grants["ReadGatewayMetrics"]["Action"] == "cloudwatch:GetMetricData"


def test_controller_needs_a_table_it_can_write() -> None:
    # GIVEN the rule that guards the controller
    rule = TEMPLATE["Rules"]["RolloutControllerNeedsRemoteTable"]
    # THEN it applies when the controller is on, and asks for a bucket or a parameter
    assert Stack(RolloutControllerEnabled="true").value(rule["RuleCondition"]) is True
    assert "ConfigBucket" in str(rule["Assertions"]) and "ConfigParameterName" in str(rule)
