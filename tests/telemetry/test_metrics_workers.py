"""/_gateway/metrics under `uvicorn --workers 2`: every scrape reports the whole server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, serve_process, write_config

REQUESTS = 200


@pytest.fixture
def two_workers(tmp_path: Path, legacy_url: str) -> Iterator[tuple[str, Path]]:
    config = write_config(
        tmp_path,
        f'targets: {{legacy: {{url: "{legacy_url}"}}}}\n'
        "routes: [{name: all, path: /, target: legacy}]",
    )
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    argv = ["-m", "uvicorn", "gateway.app:app", "--port", str(port), "--workers", "2"]
    env = {
        "GATEWAY_CONFIG": config,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GATEWAY_ACCESS_LOG": "off",
    }
    with serve_process([*argv, "--no-proxy-headers"], port, env=env):
        yield f"http://127.0.0.1:{port}", metrics_dir


def counted(text: str) -> float:
    found = re.search(r'gateway_requests_total\{route="all",target="legacy"\} ([0-9.]+)', text)
    return float(found.group(1)) if found else 0.0


def test_every_scrape_reports_every_workers_counts(two_workers: tuple[str, Path]) -> None:
    url, metrics_dir = two_workers
    # GIVEN two workers, each reached over fresh connections
    for _ in range(REQUESTS):
        with httpx.Client() as client:
            assert (
                client.get(f"{url}/api/users", headers={"connection": "close"}).status_code == 200
            )
    # WHEN the metrics are scraped several times (each scrape lands on either worker)
    scrapes = []
    for _ in range(6):
        with httpx.Client() as client:
            scrapes.append(counted(client.get(f"{url}/_gateway/metrics").text))
    # THEN both workers served requests, and every scrape counts all of them
    pids = {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("counter_*.db")}
    assert len(pids) == 2, pids
    assert scrapes == [float(REQUESTS)] * 6
