"""A real redis-server per test (loopback, free port, no persistence), stopped by its PID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.redis_kit import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """The server itself, for tests that kill, stall or restart it."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(autouse=True, scope="module")
def _no_orphaned_loop(close_the_import_time_event_loop: None) -> None:
    """These tests call asyncio.run; see the root conftest for the loop it would orphan."""
