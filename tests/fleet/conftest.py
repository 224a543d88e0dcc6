"""A real redis-server per test (loopback, free port, no persistence), stopped by its PID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.redis_kit import RedisServer, running_redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """The server itself, for tests that kill, stall or restart it."""
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(autouse=True, scope="module")
def _no_orphaned_loop(close_the_import_time_event_loop: None) -> None:
    """These tests call asyncio.run; see the root conftest for the loop it would orphan."""


@pytest.fixture(scope="module")
def cluster_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A one-node Redis cluster: ElastiCache Serverless's rules (keys of one script in one
    hash slot), which a plain redis-server does not enforce. Shared by a module: it takes
    about 2 s to come up."""
    with running_redis(tmp_path_factory.mktemp("cluster"), cluster=True) as server:
        yield server


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server that speaks TLS only (rediss://), as ElastiCache Serverless does."""
    with running_redis(tmp_path_factory.mktemp("tls"), tls=True) as server:
        yield server
