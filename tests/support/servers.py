"""Real servers on loopback for the tests: uvicorn in a thread or a child process, and raw
TCP upstreams that misbehave on purpose (reset, stall). All bound to 127.0.0.1, port 0."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

import uvicorn

LOOPBACK = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def serve_in_thread(
    app: Any,
    startup_timeout: float = 10.0,
    lifespan: Literal["auto", "on", "off"] = "on",
    http: str = "auto",
) -> Iterator[str]:
    """Yield the base URL (`http://127.0.0.1:PORT`) while uvicorn serves `app`; `http` picks
    uvicorn's parser: "httptools", "h11" or "auto"."""
    config = uvicorn.Config(
        app,
        http=http,
        log_level="warning",
        lifespan=lifespan,
        access_log=False,
        server_header=False,
        date_header=False,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    with socket.create_server((LOOPBACK, 0)) as sock:
        port = sock.getsockname()[1]
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + startup_timeout
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start serving in time")
                time.sleep(0.01)
            yield f"http://{LOOPBACK}:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=startup_timeout)


def free_port() -> int:
    with socket.create_server((LOOPBACK, 0)) as sock:
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_process(
    argv: list[str], port: int, env: dict[str, str] | None = None, timeout: float = 20.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python ARGV...` (which must listen on `port`) until the block ends."""
    with (
        tempfile.TemporaryFile() as stderr,
        subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        ) as process,
    ):
        try:
            wait_listening(port, process, timeout, stderr)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_listening(
    port: int, process: subprocess.Popen[bytes], timeout: float, stderr: IO[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stderr.seek(0)
                log = stderr.read().decode(errors="replace")
                raise RuntimeError(f"port {port} never opened; child stderr:\n{log}") from None
            time.sleep(0.05)


def _reset(conn: socket.socket) -> None:
    # SO_LINGER with a zero timeout turns close() into a TCP RST.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


@contextmanager
def raw_tcp_upstream(behaviour: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server whose every connection is handed to `behaviour` (in its own thread)."""
    listener = socket.create_server((LOOPBACK, 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=behaviour, args=(conn,), daemon=True)
            worker.start()
            workers.append(worker)

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        for worker in workers:
            worker.join(timeout=5)


def reset_after_request(conn: socket.socket) -> None:
    """Read the request head, then reset the connection without answering."""
    conn.settimeout(5)
    try:
        conn.recv(65536)
    finally:
        _reset(conn)


def write_config(directory: Path, text: str, name: str = "routes.yaml") -> str:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@contextmanager
def recording_sink() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """An HTTP server that answers 200 to every POST and keeps (path, body): an OTLP sink."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            received.append((self.path, self.rfile.read(length)))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
