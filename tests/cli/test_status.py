"""`gateway status URL`: a running gateway's weights and each target's numbers, at a glance."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.cli.status import Row, render, rows
from gateway.config.model import CounterSnapshot
from gateway.rollouts.controller import add_rollout_verbs
from tests.support.servers import free_port, serve_in_thread, write_config

ROUTES = """\
targets:
  legacy: {{url: "{legacy}"}}
  orders-v2: {{url: "{canary}"}}
routes:
  - name: orders
    path: /api/orders
    split: {{legacy: 50, orders-v2: 50}}
  - name: everything-else
    path: /
    target: legacy
  - name: unused
    path: /nothing-here
    target: orders-v2
"""


def gateway(*argv: str) -> int:
    top = argparse.ArgumentParser(prog="gateway")
    add_rollout_verbs(top.add_subparsers(required=True))
    args = top.parse_args(argv)
    code: int = args.run(args)
    return code


@pytest.fixture
def gateway_url(
    tmp_path: Path, legacy_url: str, orders_v2_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch.setenv("GATEWAY_ACCESS_LOG", "off")
    path = write_config(tmp_path, ROUTES.format(legacy=legacy_url, canary=orders_v2_url))
    with serve_in_thread(create_app(path)) as url:
        yield url


def column_end(header: str, name: str) -> int:
    return header.index(name) + len(name)


def test_status_prints_weights_requests_errors_and_p99_per_route_and_target(
    gateway_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN some traffic: orders split between both targets, and 2 of 10 other requests failing
    served: Counter[str] = Counter()
    with httpx.Client(base_url=gateway_url) as client:
        for _ in range(60):
            served[client.get("/api/orders").headers["x-gateway-target"]] += 1
        for path in ["/_stub/status/503"] * 2 + ["/api/users"] * 8:
            client.get(path)
    # WHEN the status is asked
    code = gateway("status", gateway_url)
    header, *lines = capsys.readouterr().out.splitlines()
    # THEN each route's targets are listed with their live weight and numbers
    assert code == 0
    assert header.split() == ["ROUTE", "TARGET", "WEIGHT", "REQUESTS", "5XX", "RATE", "P50", "P99"]
    assert [line.split()[:-2] for line in lines] == [
        ["orders", "legacy", "50%", str(served["legacy"]), "0%"],
        ["orders-v2", "50%", str(served["orders-v2"]), "0%"],
        ["everything-else", "legacy", "100%", "10", "20%"],
        ["unused", "orders-v2", "100%", "0", "-"],
    ]
    assert lines[3].split()[-1] == "-"
    assert all(line.split()[-1].endswith(("ms", "s")) for line in lines[:3])
    # AND the numbers line up under their headings, for a person reading at a glance
    for name in ("WEIGHT", "REQUESTS", "5XX RATE", "P50", "P99"):
        end = column_end(header, name)
        assert all(line[end - 1] != " " and line[end : end + 1] in ("", " ") for line in lines)
    assert all(line.index(line.split()[-6]) == header.index("TARGET") for line in lines)


def test_status_of_an_unreachable_gateway_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN nothing listening, WHEN the status is asked, THEN it says so and exits 1
    url = f"http://127.0.0.1:{free_port()}"
    assert gateway("status", url) == 1
    assert f"cannot read {url}/_gateway/routes" in capsys.readouterr().err


def test_targets_seen_only_in_the_metrics_are_listed_without_a_weight() -> None:
    # GIVEN a fallback target that served the route without being in its split
    routes = [{"name": "orders", "split": {"legacy": 100}}]
    counters = {
        ("orders", "legacy"): CounterSnapshot("legacy", 10, 0, ((0.01, 10), (float("inf"), 10))),
        ("orders", "static"): CounterSnapshot("static", 4, 4, ((0.01, 4), (float("inf"), 4))),
    }
    # WHEN the rows are built and rendered
    found = rows(routes, counters)
    table = render(found).splitlines()
    # THEN it comes after the split's targets, with "-" for its weight
    assert [(row.target, row.weight) for row in found] == [("legacy", 100.0), ("static", None)]
    assert isinstance(found[1], Row)
    assert table[2].split() == ["static", "-", "4", "100%", "-", "9.9ms"]
