"""Start a real gateway (uvicorn on loopback) on a route table written for the test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol

import pytest

from gateway.app import create_app
from gateway.telemetry.exchange import Telemetry
from tests.support.servers import serve_in_thread, write_config


class GatewayFactory(Protocol):
    def __call__(self, text: str, telemetry: Telemetry | None = None) -> str: ...


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    """`start_gateway(yaml_text)` -> base URL of a gateway serving that table."""
    with ExitStack() as stack:
        count = itertools.count()

        def start(text: str, telemetry: Telemetry | None = None) -> str:
            path = write_config(tmp_path, text, f"routes-{next(count)}.yaml")
            return stack.enter_context(serve_in_thread(create_app(path, telemetry=telemetry)))

        yield start
