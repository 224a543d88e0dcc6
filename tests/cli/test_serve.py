"""`gateway serve` and `gateway --version`, as a user runs them: a child process."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.support.rawhttp import build, request
from tests.support.servers import free_port, raw_tcp_upstream, serve_process, write_config

UPSTREAM_DATE = b"Mon, 01 Jan 2001 00:00:00 GMT"


def dated_upstream(conn: socket.socket) -> None:
    """Answers /dated with its own Date and Server, anything else with neither."""
    conn.settimeout(5)
    with conn:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                return
            head += chunk
        own = b"Date: " + UPSTREAM_DATE + b"\r\nServer: upstream/1\r\n"
        extra = own if head.split(b" ", 2)[1].startswith(b"/dated") else b""
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: 2\r\n\r\nok")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with raw_tcp_upstream(dated_upstream) as upstream:
        table = f"""
targets:
  up: {{url: "{upstream}"}}
routes:
  - {{name: dated, path: /dated, target: up}}
  - {{name: undated, path: /undated, target: up}}
"""
        path = write_config(Path(tmp_path_factory.mktemp("serve")), table)
        port = free_port()
        argv = ["-m", "gateway.cli.main", "serve", path, "--port", str(port)]
        with serve_process(argv, port, env={"GATEWAY_ACCESS_LOG": "off"}):
            yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("path", "dates", "servers"),
    [
        ("/dated", [UPSTREAM_DATE], [b"upstream/1"]),
        ("/undated", None, []),
        ("/nowhere", None, []),
        ("/_gateway/health", None, []),
    ],
    ids=["upstream-date-and-server", "upstream-without-date", "gateway-404", "admin-api"],
)
def test_one_date_and_no_server_of_uvicorns_own(
    served: str, path: str, dates: list[bytes] | None, servers: list[bytes]
) -> None:
    # GIVEN `gateway serve` in front of an upstream that sends Date and Server on one path
    # WHEN a client asks
    answer = request(served, build("GET", path, [("Host", "h")]))
    # THEN there is exactly one Date (the upstream's when it sent one) and only its Server
    assert len(answer.all("date")) == 1, answer.headers
    if dates is not None:
        assert answer.all("date") == dates
    assert answer.all("server") == servers


def test_a_broken_table_is_one_message_and_exit_1(tmp_path: Path) -> None:
    # GIVEN a table with a typo
    path = write_config(tmp_path, "targets: {}\nroutes:\n  - {name: x, path: /, spilt: {}}\n")
    # WHEN it is served
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "serve", path, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # THEN the problem is named, with no traceback, and nothing is served
    assert done.returncode == 1
    assert "spilt" in done.stderr
    assert "Traceback" not in done.stderr


def test_version_is_the_package_version() -> None:
    # WHEN the version is asked for
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # THEN it is the installed package's
    assert done.stdout.strip() == f"gateway {version('strangler-gateway')}"
