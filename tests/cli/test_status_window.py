"""`gateway status --window`: the recent past, not the average since the gateway started."""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.asgi import Receive, Scope, Send
from gateway.rollouts.controller import add_rollout_verbs
from gateway.rollouts.metrics import PrometheusSource, lifetime, parse_prometheus, quantile
from gateway.telemetry.metrics import LocalMetrics
from gateway.telemetry.recent import RecentWindow
from tests.support.servers import serve_in_thread, write_config
from tests.support.telemetry_kit import recorded

ROUTES = """\
targets:
  legacy: {{url: "{legacy}"}}
  canary: {{url: "{canary}"}}
routes:
  - {{name: orders, path: /api/orders, target: canary}}
"""


class Flaky:
    """An upstream failing 43 of each 100 requests once told to (deterministic, no random)."""

    def __init__(self) -> None:
        self.failing = False
        self.count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.count += 1
        status = 500 if self.failing and self.count % 100 < 43 else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def gateway(*argv: str) -> int:
    top = argparse.ArgumentParser(prog="gateway")
    add_rollout_verbs(top.add_subparsers(required=True))
    args = top.parse_args(argv)
    code: int = args.run(args)
    return code


@pytest.fixture
def flaky() -> Iterator[tuple[Flaky, str]]:
    upstream = Flaky()
    with serve_in_thread(upstream) as url:
        yield upstream, url


def test_a_canary_failing_43_percent_recently_shows_43_percent_under_window(
    tmp_path: Path,
    legacy_url: str,
    flaky: tuple[Flaky, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a gateway whose canary was healthy for 300 requests, then (10 minutes later, by
    # the gateway's clock) failed 43 of the next 100
    monkeypatch.setenv("GATEWAY_ACCESS_LOG", "off")
    upstream, canary_url = flaky
    telemetry = recorded(tracing=False).telemetry
    clock = [1_000_000.0]
    telemetry.metrics.recent.clock = lambda: clock[0]
    path = write_config(tmp_path, ROUTES.format(legacy=legacy_url, canary=canary_url))
    with serve_in_thread(create_app(path, telemetry=telemetry)) as url:
        with httpx.Client(base_url=url) as client:
            for _ in range(300):
                client.get("/api/orders")
            clock[0] += 600
            upstream.failing, upstream.count = True, 0
            for _ in range(100):
                client.get("/api/orders")
        # WHEN the status is asked over the last 5 minutes
        assert gateway("status", url, "--window", "5m", "-o", "json") == 0
        look = json.loads(capsys.readouterr().out)
        since_start = lifetime(PrometheusSource(url).scrape()[("orders", "canary")])
    # THEN it shows the true recent error rate, where the counters since start average it away
    (row,) = look["rows"]
    assert (row["requests"], row["errors"]) == (100, 43)
    assert row["error_rate"] == pytest.approx(0.43)
    assert since_start.error_rate == pytest.approx(43 / 400)
    assert look["window"] == "5m"


def test_a_2ms_p99_is_told_from_a_4ms_one() -> None:
    # GIVEN requests answered in 1.8 ms, and others in 3.8 ms
    fast, slow = RecentWindow(clock=lambda: 0.0), RecentWindow(clock=lambda: 0.0)
    metrics = LocalMetrics()
    for _ in range(200):
        fast.observe("r", "t", 200, 0.0018)
        slow.observe("r", "t", 200, 0.0038)
        metrics.observe("r", "t", 200, 0.0018)
    # THEN the windowed p99 and the Prometheus histogram's p99 both say about 2 ms, not 4.95
    fast_p99, slow_p99 = fast.summary(60)[0]["p99"], slow.summary(60)[0]["p99"]
    assert fast_p99 is not None and slow_p99 is not None
    assert fast_p99 <= 0.002
    assert 0.003 < slow_p99 <= 0.004
    counts = PrometheusLike(metrics).buckets()
    p99 = quantile(0.99, counts)
    assert p99 is not None and p99 <= 0.002


class PrometheusLike:
    """The cumulative buckets LocalMetrics renders, read back as the controller reads them."""

    def __init__(self, metrics: LocalMetrics) -> None:
        self.text = metrics.render()[0].decode()

    def buckets(self) -> list[tuple[float, float]]:
        return list(parse_prometheus(self.text)[("r", "t")].buckets)


def test_a_window_merges_only_the_minutes_it_covers() -> None:
    # GIVEN requests 30 minutes ago and now
    clock = [10_000.0 * 60]
    window = RecentWindow(clock=lambda: clock[0])
    window.observe("r", "t", 500, 0.01)
    clock[0] += 30 * 60
    window.observe("r", "t", 200, 0.01)
    # THEN 5 minutes see one request, an hour both
    assert window.summary(300)[0]["requests"] == 1
    assert window.summary(3600)[0]["requests"] == 2


def test_watch_stamps_its_looks_and_warns_of_a_refused_reload(
    tmp_path: Path,
    legacy_url: str,
    flaky: tuple[Flaky, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a gateway whose file on disk was broken after it loaded it
    monkeypatch.setenv("GATEWAY_ACCESS_LOG", "off")
    monkeypatch.setenv("GATEWAY_CONFIG_TTL", "0.1")
    path = Path(write_config(tmp_path, ROUTES.format(legacy=legacy_url, canary=flaky[1])))
    with serve_in_thread(create_app(str(path))) as url:
        path.write_text(path.read_text().replace("target: canary", "target: nowhere"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if httpx.get(f"{url}/_gateway/routes").json()["last_reload_error"]:
                break
            time.sleep(0.05)
        # WHEN watched for three looks at which nothing changes
        assert gateway("status", url, "--watch", "--every", "0.01", "--count", "3") == 0
    # THEN one stamped block is printed, with the warning line
    out = capsys.readouterr().out
    assert out.count("last 5m") == 1
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  last 5m\n", out)
    assert "warning: the gateway refused the file on disk at its last reload" in out
    assert "nowhere" in out
