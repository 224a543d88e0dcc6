"""A gateway under a chosen uvicorn parser, for tests that replay the same bytes under both."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.app import create_app
from tests.support.servers import serve_in_thread, write_config

PARSERS = ("httptools", "h11")


@contextmanager
def gateway_under(parser: str, directory: Path, table: str) -> Iterator[str]:
    """The base URL of a gateway serving `table` with uvicorn's `parser`."""
    path = write_config(directory, table, f"routes-{parser}.yaml")
    with serve_in_thread(create_app(path), http=parser) as url:
        yield url


def one_target_table(url: str, extra: str = "") -> str:
    """A table sending every path to one HTTP target at `url` (with `extra` target keys)."""
    return f"""
targets:
  upstream: {{url: "{url}"{", " + extra if extra else ""}}}
routes:
  - {{name: all, path: /, target: upstream}}
"""
