"""`gateway rollout pause|resume|abort|retry`: a person steering a rollout the controller
runs, against a real gateway and the services on loopback."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.cli.main import main
from gateway.config.load import load_config
from gateway.config.model import Route
from gateway.config.store import store_for
from gateway.migration.ledger import LEDGER_NAME, FileLedger
from gateway.rollouts.control import steps_overview
from gateway.rollouts.controller import Outcome, watch
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


def test_the_state_block_is_written_for_people_and_the_old_form_still_reads(
    running: tuple[str, Path],
) -> None:
    # GIVEN a rollout the controller started  THEN its state says step 1 and an ISO time
    url, path = running
    assert judge(url, path, T0) == 0
    text = path.read_text()
    assert "step: 1\n" in text and "started_at: '2023-11-14T22:14:00Z'" in text.replace('"', "'")
    state = (orders(path).rollout or pytest.fail()).state
    assert (state.step, state.started_at) == (0, T0)
    # WHEN a table in the older form (0-based step, epoch seconds) is read  THEN the same state
    old = text.replace("step: 1\n", "step: 0\n")
    old = old.replace("'2023-11-14T22:14:00Z'", str(T0)).replace('"2023-11-14T22:14:00Z"', str(T0))
    path.write_text(old)
    again = (orders(path).rollout or pytest.fail()).state
    assert (again.step, again.started_at) == (0, T0)


def test_watch_stamps_each_line_shows_the_steps_and_is_silent_when_nothing_changed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN judgements that wait twice with the same verdict, then promote
    verdicts = iter(["waiting", "waiting", "promoted"])

    def judge_once() -> Outcome:
        kind = next(verdicts)
        return Outcome("orders", kind, f"{kind} at step 2")  # type: ignore[arg-type]

    # WHEN watched, with an overview of the steps
    code = watch(judge_once, 1.0, lambda _: None, lambda: "steps: 10% [50%] 100% (running)")
    # THEN each printed line carries a UTC time, the unchanged judgement printed nothing
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split("  ", 1)[1] for line in lines] == [
        "orders: waiting at step 2",
        "steps: 10% [50%] 100% (running)",
        "orders: promoted at step 2",
        "steps: 10% [50%] 100% (running)",
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line[:20]) for line in lines)


def test_the_overview_marks_the_current_step_and_names_the_thresholds(
    running: tuple[str, Path],
) -> None:
    # GIVEN a rollout at its first step  THEN the overview marks it, with the thresholds
    url, path = running
    assert judge(url, path, T0) == 0
    assert steps_overview(store_for(str(path)), "orders") == (
        "steps: [10%] 50% 100% (running); per step: 1s, min 5 requests, 5xx <= 5%"
    )
