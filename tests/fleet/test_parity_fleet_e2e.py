"""Parity counted fleet-wide: two gateways with `state:` on one redis-server report one score."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from tests.parity.loopback import OrderService, settled
from tests.support.servers import serve_in_thread, write_config

PER_GATEWAY = 15


def table(redis_url: str, legacy: str, candidate: str) -> str:
    return f"""
state: {{redis: "{redis_url}", timeout: 1s}}
targets:
  legacy: {{url: "{legacy}"}}
  orders-v2: {{url: "{candidate}"}}
routes:
  - name: orders
    path: /api/orders
    target: legacy
    shadow:
      target: orders-v2
      compare: {{noise: 0, min_compared: 5}}
"""


@pytest.fixture
def two_gateways(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with ExitStack() as stack:
        legacy = stack.enter_context(serve_in_thread(OrderService()))
        candidate = stack.enter_context(serve_in_thread(OrderService()))
        path = write_config(tmp_path, table(redis_url, legacy, candidate))
        first = stack.enter_context(serve_in_thread(create_app(path)))
        second = stack.enter_context(serve_in_thread(create_app(path)))
        yield first, second


def test_two_gateways_share_one_parity_count(two_gateways: tuple[str, str]) -> None:
    # GIVEN two gateways whose table has `state:` on the same Redis and a shadowed route
    first, second = two_gateways
    # WHEN each serves its share of requests (every one copied to the candidate)
    with httpx.Client(timeout=5) as client:
        for gateway in (first, second):
            for number in range(PER_GATEWAY):
                assert client.get(f"{gateway}/api/orders/{number}").status_code == 200
    # THEN either gateway reports the copies of both: the count lives in Redis, not the process
    entry = settled(first, "orders", 2 * PER_GATEWAY)
    assert entry["counts"]["compared"] == 2 * PER_GATEWAY
    assert settled(second, "orders", 2 * PER_GATEWAY)["counts"]["compared"] == 2 * PER_GATEWAY
