"""Shared, read-only fixtures: the legacy stub and the orders-v2 service on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from legacy_stub.app import app as legacy_app
from services.orders_v2.app import app as orders_v2_app
from tests.servers import serve_in_thread


@pytest.fixture(scope="session")
def legacy_url() -> Iterator[str]:
    with serve_in_thread(legacy_app) as url:
        yield url


@pytest.fixture(scope="session")
def orders_v2_url() -> Iterator[str]:
    with serve_in_thread(orders_v2_app) as url:
        yield url


pytest_plugins = ["tests.gateways"]
