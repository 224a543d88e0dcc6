"""Shared, read-only fixtures: the legacy stub and the orders-v2 service on loopback."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator

import pytest

from legacy_stub.app import app as legacy_app
from services.orders_v2.app import app as orders_v2_app
from tests.support.servers import serve_in_thread


@pytest.fixture(scope="session")
def legacy_url() -> Iterator[str]:
    with serve_in_thread(legacy_app) as url:
        yield url


@pytest.fixture(scope="session")
def orders_v2_url() -> Iterator[str]:
    with serve_in_thread(orders_v2_app) as url:
        yield url


pytest_plugins = ["tests.support.gateways", "tests.support.aws"]


@pytest.fixture(scope="module")
def close_the_import_time_event_loop() -> None:
    """services.orders_v2.app's module-level Mangum handler sets an event loop at import; the
    first asyncio.run in a module would orphan it unclosed (a ResourceWarning, so an error).
    Closing it leaves the state any asyncio.run leaves: no current loop."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return
    if not loop.is_running():
        loop.close()
        asyncio.set_event_loop(None)
