"""The security tests' shared fixture: an upstream that echoes what it received."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from legacy_stub.app import create_app as create_legacy
from tests.support.servers import serve_in_thread


@pytest.fixture(scope="module")
def echo_upstream() -> Iterator[str]:
    """The legacy stub, whose /echo/... answers with the request it received."""
    with serve_in_thread(create_legacy()) as url:
        yield url
