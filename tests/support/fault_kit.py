"""Tools for the loopback fault run: observed upstreams, restartable processes, /proc readings.

`legacy` and `orders_v2` are uvicorn factories (`python -m uvicorn tests.support.fault_kit:legacy
--factory`) serving the real apps wrapped in `Observed`, which counts the requests inside the
app (and the most ever inside at once), appends the sha256 of every POST body it fully
received to the journal named by FAULT_JOURNAL, and on request holds its answers back once
the work is done (an order created, then answered too late: what a retry would repeat). The
journal is written straight to the kernel (`O_APPEND`), so it survives a SIGKILL of the
process and spans its restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs

from gateway.asgi import ASGIApp, Message, Receive, Scope, Send
from tests.support.servers import ROOT, wait_listening

JOURNAL_ENV = "FAULT_JOURNAL"
STATS_PATH = "/_kit/stats"
STALL_PATH = "/_kit/stall"  # ?seconds=F: hold every answer F seconds after the app's work


class Observed:
    """Wraps an upstream app: requests in flight (and their maximum), and a POST journal.

    A request counts from when the app is called until its last body message is handed to
    the server: the gateway cannot have the whole answer (and free its slot) any earlier.
    """

    def __init__(self, app: ASGIApp, journal: str | None) -> None:
        self.app = app
        self.in_flight = 0
        self.max_in_flight = 0
        self.journal = journal
        self.stall = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == STATS_PATH:
            await _answer(send, {"in_flight": self.in_flight, "max_in_flight": self.max_in_flight})
            return
        if scope["path"] == STALL_PATH:
            query = parse_qs(scope["query_string"].decode())
            self.stall = float(query.get("seconds", ["0"])[0])
            await _answer(send, {"stall": self.stall})
            return
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        inside = True
        digest = hashlib.sha256() if scope["method"] == "POST" else None

        async def receive_journaled() -> Message:
            message = await receive()
            if digest is not None and message["type"] == "http.request":
                digest.update(message.get("body", b""))
                if not message.get("more_body", False):
                    self._journal(f"{scope['path']} {digest.hexdigest()}\n")
            return message

        async def send_counted(message: Message) -> None:
            nonlocal inside
            if message["type"] == "http.response.start" and self.stall:
                await asyncio.sleep(self.stall)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                inside = self._leave(inside)
            await send(message)

        try:
            await self.app(scope, receive_journaled, send_counted)
        finally:
            self._leave(inside)

    def _leave(self, inside: bool) -> bool:
        if inside:
            self.in_flight -= 1
        return False

    def _journal(self, line: str) -> None:
        if self.journal is None:
            return
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


async def _answer(send: Send, body: dict[str, float]) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def legacy() -> ASGIApp:
    from legacy_stub.app import create_app

    return Observed(create_app(), os.environ.get(JOURNAL_ENV))


def orders_v2() -> ASGIApp:
    from services.orders_v2.app import create_app

    return Observed(create_app(), os.environ.get(JOURNAL_ENV))


def read_journal(path: Path) -> Counter[tuple[str, str]]:
    """How often each (path, body sha256) reached the upstream."""
    if not path.exists():
        return Counter()
    lines = path.read_text().splitlines()
    return Counter((p, sha) for p, sha in (line.split() for line in lines))


class Service:
    """`python ARGV...` listening on a fixed port, which can be killed and started again."""

    def __init__(self, argv: list[str], port: int, env: dict[str, str]) -> None:
        self.argv, self.port, self.env = argv, port, env
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._logs: contextlib.ExitStack = contextlib.ExitStack()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("not running")
        return self.process.pid

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until its port accepts connections."""
        # Closed with the others by stop(): each start's log is kept for wait_listening.
        self._stderr = self._logs.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, *self.argv],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        wait_listening(self.port, self.process, timeout, self._stderr)

    def kill(self) -> None:
        """SIGKILL: no shutdown, open connections die with the process."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        self._logs.close()


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    try:
        service.start()
        yield service
    finally:
        service.stop()


def answer_head_then_close(conn: socket.socket) -> None:
    """Read one whole request, answer the head of a 201 with a 193-byte body, and close:
    a service that dies between its head and its body (for `raw_tcp_upstream`)."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(65536)
    # Everything read, so close() sends a FIN, not a reset: the head surely arrives.
    conn.sendall(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n")
    conn.sendall(b"content-length: 193\r\n\r\n")
    conn.close()


def uvicorn_argv(app: str, port: int, *extra: str) -> list[str]:
    return ["-m", "uvicorn", app, "--port", str(port), "--log-level", "warning", *extra]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc status")


def open_sockets(pid: int) -> int:
    """Sockets among the process's open files (listening, client and upstream connections)."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed since the listing
            count += str(fd.readlink()).startswith("socket:")
    return count


@dataclass(frozen=True, slots=True)
class Footprint:
    rss_kb: int
    sockets: int

    @classmethod
    def of(cls, pid: int) -> Footprint:
        return cls(rss_kb(pid), open_sockets(pid))

    def __str__(self) -> str:
        return f"RSS {self.rss_kb / 1024:.1f} MB, {self.sockets} sockets"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def as_json(text: bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
