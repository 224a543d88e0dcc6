"""`gateway rollout pause|resume|abort|retry`: a person steering a rollout the controller
runs, against a real gateway and the services on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.cli.main import main
from gateway.config.load import load_config
from gateway.config.model import Route
from gateway.migration.ledger import LEDGER_NAME, FileLedger
from tests.support.servers import serve_in_thread, write_config

T0 = 1_700_000_040.0
ROUTES = """\
targets:
  legacy: {{url: "{legacy}"}}
  orders-v2: {{url: "{canary}"}}
routes:
  # the controller's to move; a person may steer it
  - name: orders
    path: /api/orders
    split: {{legacy: 100, orders-v2: 0}}
    rollout:
      target: orders-v2
      steps: [10, 50, 100]
      interval: 1s
      min_requests: 5
      max_error_rate: 5%
"""


@pytest.fixture
def running(
    tmp_path: Path, legacy_url: str, orders_v2_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Path]]:
    monkeypatch.setenv("GATEWAY_ACCESS_LOG", "off")
    monkeypatch.setenv("GATEWAY_CONFIG_TTL", "0.1")
    path = Path(write_config(tmp_path, ROUTES.format(legacy=legacy_url, canary=orders_v2_url)))
    with serve_in_thread(create_app(str(path))) as url:
        yield url, path


def orders(path: Path) -> Route:
    return next(r for r in load_config(str(path)).routes if r.name == "orders")


def judge(url: str, path: Path, at: float) -> int:
    return main(["rollout", str(path), "orders", "--metrics", url, "--now", str(at)])


def traffic(url: str, count: int = 200) -> None:
    """COUNT requests, once the gateway serves orders-v2 its 10% (bounded wait)."""
    deadline = time.monotonic() + 10
    with httpx.Client(base_url=url) as client:
        while time.monotonic() < deadline:
            routes = client.get("/_gateway/routes").json()["routes"]
            if next(r for r in routes if r["name"] == "orders")["split"]["orders-v2"] == 10:
                break
            time.sleep(0.05)
        for _ in range(count):
            client.get("/api/orders")


def test_pause_holds_the_rollout_resume_moves_it_on(
    running: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a rollout started at its first step
    url, path = running
    assert judge(url, path, T0) == 0
    assert dict(orders(path).split)["orders-v2"] == 10
    # WHEN paused  THEN a judgement long after, with traffic, moves nothing
    assert main(["rollout", "pause", str(path), "orders", "--by", "ops"]) == 0
    traffic(url)
    assert judge(url, path, T0 + 3600) == 0
    assert "paused at step 1" in capsys.readouterr().out
    assert (orders(path).rollout or pytest.fail()).state.status == "paused"
    assert dict(orders(path).split)["orders-v2"] == 10
    # WHEN resumed  THEN the next judgement advances to the second step
    assert main(["rollout", "resume", str(path), "orders"]) == 0
    assert judge(url, path, T0 + 3600) == 0
    assert dict(orders(path).split)["orders-v2"] == 50
    kinds = [line["kind"] for line in FileLedger(path.parent / LEDGER_NAME).entries()]
    assert kinds == ["rollout-step", "rollout-pause", "rollout-resume", "rollout-step"]


def test_abort_sends_all_back_and_retry_starts_again_from_the_first_step(
    running: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a rollout at its first step
    url, path = running
    assert judge(url, path, T0) == 0
    # WHEN aborted  THEN all of the route is on the baseline, and the controller stops (exit 3)
    assert main(["rollout", "abort", str(path), "orders"]) == 0
    assert dict(orders(path).split) == {"legacy": 100.0, "orders-v2": 0.0}
    assert judge(url, path, T0 + 60) == 3
    # WHEN retried  THEN the next judgement starts again at step 1
    assert main(["rollout", "retry", str(path), "orders"]) == 0
    assert judge(url, path, T0 + 120) == 0
    assert "started at step 1" in capsys.readouterr().out
    assert dict(orders(path).split)["orders-v2"] == 10


def test_a_move_the_status_does_not_allow_is_refused_and_nothing_changes(
    running: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a running rollout  WHEN resumed or retried  THEN refused, saying why; file intact
    _, path = running
    before = path.read_text()
    assert main(["rollout", "resume", str(path), "orders"]) == 1
    assert main(["rollout", "retry", str(path), "orders"]) == 1
    err = capsys.readouterr().err
    assert "cannot resume a rollout that is running" in err
    assert "cannot retry a rollout that is running (only one that is rolled_back or aborted)" in err
    assert path.read_text() == before
