"""`gateway progress` on a scripted history, and the migration metrics of a running gateway."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.cli.main import main
from gateway.config.load import parse_config
from gateway.migration.ledger import LEDGER_NAME, FileLedger
from gateway.migration.progress import history, report
from tests.support.servers import serve_in_thread, write_config

TABLE = """\
legacy: mono
targets:
  mono: {{url: "{legacy}"}}
  v2: {{url: "{candidate}"}}
routes:
  - {{name: orders, path: /api/orders, split: {{mono: 0, v2: 100}}, fallback: mono}}
  - {{name: users, path: /api/users, split: {{mono: 75, v2: 25}}}}
  - {{name: products, path: /api/products, target: mono}}
  - {{name: rest, path: /, target: mono}}
"""
SCRIPT = [
    {"time": "2026-11-01T09:00:00Z", "route": "orders", "to": "canary", "legacy": "mono",
     "split": {"mono": 90, "v2": 10}},
    {"time": "2026-11-01T15:00:00Z", "route": "users", "to": "shadow", "legacy": "mono",
     "split": {"mono": 100, "v2": 0}},
    {"time": "2026-11-02T09:00:00Z", "route": "orders", "to": "new", "legacy": "mono",
     "split": {"mono": 0, "v2": 100}},
    {"time": "2026-11-03T09:00:00Z", "route": "users", "to": "canary", "legacy": "mono",
     "split": {"mono": 75, "v2": 25}},
]  # fmt: skip


def test_progress_on_a_scripted_history_gives_the_expected_shares() -> None:
    # GIVEN a table (one new, one canary, two on the legacy) and per-target request counts
    config = parse_config(TABLE.format(legacy="http://127.0.0.1:9", candidate="http://x:9"), "t")
    requests = {
        ("orders", "v2"): 600.0, ("orders", "mono"): 0.0, ("users", "v2"): 100.0,
        ("users", "mono"): 300.0, ("products", "mono"): 700.0, ("rest", "mono"): 300.0,
    }  # fmt: skip
    # WHEN the progress is reported
    found = report(config, requests, SCRIPT, "24h")
    # THEN stages are counted and shared, 700 of 2000 requests went to new services
    assert {s: row["routes"] for s, row in found["stages"].items()} == {
        "legacy": 2, "shadow": 0, "canary": 1, "new": 1, "retired": 0,
    }  # fmt: skip
    assert found["stages"]["legacy"]["share"] == 0.5
    assert found["new_share"] == pytest.approx(700 / 2000)
    # AND the burn-down lists the routes on the legacy, the busiest first
    assert [row["route"] for row in found["burn_down"]] == ["products", "rest"]


def test_history_counts_routes_and_traffic_off_the_legacy_per_day() -> None:
    # GIVEN four moves over three days  THEN each day's end is summed up
    assert history(SCRIPT) == [
        {"day": "2026-11-01", "moves": 2, "routes_off_legacy": 1, "traffic_off_legacy": 5.0},
        {"day": "2026-11-02", "moves": 1, "routes_off_legacy": 1, "traffic_off_legacy": 50.0},
        {"day": "2026-11-03", "moves": 1, "routes_off_legacy": 2, "traffic_off_legacy": 62.5},
    ]


def test_progress_verb_reads_a_running_gateway_and_the_ledger_beside_the_table(
    tmp_path: Path,
    legacy_url: str,
    orders_v2_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a running gateway with traffic, and a ledger beside its table
    monkeypatch.setenv("GATEWAY_ACCESS_LOG", "off")
    path = write_config(tmp_path, TABLE.format(legacy=legacy_url, candidate=orders_v2_url))
    for line in SCRIPT:
        FileLedger(tmp_path / LEDGER_NAME).append(line)
    with serve_in_thread(create_app(path)) as url:
        with httpx.Client(base_url=url) as client:
            for _ in range(3):
                client.get("/api/orders")
                client.get("/api/products")
        # WHEN progress is asked, as JSON
        assert main(["progress", path, "--metrics", url, "-o", "json"]) == 0
        found = json.loads(capsys.readouterr().out)
        # THEN half the requests were answered by the new service; products leads the burn-down
        assert found["new_share"] == pytest.approx(0.5)
        assert found["burn_down"][0] == {"route": "products", "stage": "legacy", "requests": 3.0}
        assert len(found["history"]) == 3
        # AND the gateway's own metrics say the same
        text = httpx.get(f"{url}/_gateway/metrics").text
    assert 'gateway_migration_routes{stage="legacy"} 2' in text
    assert 'gateway_migration_routes{stage="new"} 1' in text
    assert "gateway_migration_new_share 0.5" in text
