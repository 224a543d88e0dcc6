"""Small answers: time to first byte of a slow drip against a clean 502 on a mid-answer death.

The gateway reads a small sized answer (<= 64 KiB) whole before answering only if its body
completes within `forwarding.WHOLE_WITHIN` of its head; else it streams on. Both sides of that
trade, in one run, for two settings of the bound:

    whole      WHOLE_WITHIN = infinity: every small answer read whole first (the old behaviour)
    bounded    WHOLE_WITHIN as shipped (50 ms)

1. Time to first body byte of httpbin's `/drip` (gunicorn on loopback), straight and through
   a gateway (uvicorn in a thread of this process), rounds interleaved, medians.
2. An upstream that sends the head of a 100-byte answer and 10 bytes, then dies after D ms:
   what the client gets (a clean 502, or a 200 cut short).

    .venv/bin/python bench/drip_bench.py [--rounds 3] [--duration 1.0]

Needs httpbin and gunicorn (the dev extra). Everything on 127.0.0.1; every process started is
stopped on exit.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from gateway import forwarding
from gateway.app import create_app

HOST = "127.0.0.1"
SETTINGS = {"whole": math.inf, "bounded": forwarding.WHOLE_WITHIN}
DEATHS_MS = (0, 20, 200, 1000)


def free_port() -> int:
    with socket.create_server((HOST, 0)) as sock:
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {timeout} s")


@contextmanager
def httpbin() -> Iterator[int]:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "-b", f"{HOST}:{port}", "-k", "gthread"]
    # --keep-alive 0: gunicorn does not set TCP_NODELAY, so on a pooled connection its body
    # write waits for the gateway's delayed ACK (~200 ms) behind its head write; a fresh
    # connection per request (as the straight client has) keeps that out of the comparison.
    argv += ["--threads", "8", "--keep-alive", "0", "--log-level", "warning", "httpbin:app"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def gateway(upstream_port: int) -> Iterator[int]:
    table = f"""
targets:
  up: {{url: "http://{HOST}:{upstream_port}", breaker: off}}
routes:
  - {{name: all, path: /, target: up}}
"""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "routes.yaml"
        path.write_text(table, encoding="utf-8")
        os.environ["GATEWAY_ACCESS_LOG"] = "off"
        config = uvicorn.Config(
            create_app(str(path)), log_level="critical", access_log=False, date_header=False
        )
        server = uvicorn.Server(config)
        with socket.create_server((HOST, 0)) as sock:
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.01)
            try:
                yield sock.getsockname()[1]
            finally:
                server.should_exit = True
                thread.join(timeout=10)


def first_byte_and_status(port: int, target: str, timeout: float = 10.0) -> tuple[float, bytes]:
    """Seconds to the first body byte, and the whole raw answer."""
    request = f"GET {target} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        started = time.perf_counter()
        sock.sendall(request)
        received, first = b"", math.nan
        while chunk := sock.recv(65536):
            received += chunk
            head, sep, body = received.partition(b"\r\n\r\n")
            if sep and body and math.isnan(first):
                first = time.perf_counter() - started
        return first, received


def dies_after(delay_ms: int) -> Callable[[socket.socket], None]:
    def behaviour(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            time.sleep(delay_ms / 1000)

    return behaviour


@contextmanager
def raw_upstream(behaviour: Callable[[socket.socket], None]) -> Iterator[int]:
    listener = socket.create_server((HOST, 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=behaviour, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def verdict(raw: bytes) -> str:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode() if head else "none"
    if status == "502":
        return "clean 502"
    return f"{status}, {len(body)} of 100 bytes"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=1.0, help="/drip's duration, s")
    args = parser.parse_args()
    logging.getLogger("gateway").setLevel(logging.ERROR)  # the cut-short answers are expected
    drip = f"/drip?duration={args.duration}&numbytes=5&code=200&delay=0"
    times: dict[str, list[float]] = {"straight": [], **{name: [] for name in SETTINGS}}
    with httpbin() as bin_port, gateway(bin_port) as gw_port:
        first_byte_and_status(gw_port, "/get")  # warm the pool
        for round_ in range(args.rounds):
            order = ["straight", *SETTINGS]
            for name in order if round_ % 2 == 0 else reversed(order):
                forwarding.WHOLE_WITHIN = SETTINGS.get(name, math.inf)
                port = bin_port if name == "straight" else gw_port
                times[name].append(first_byte_and_status(port, drip)[0])
    median = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"time to first byte of {drip} (median of {args.rounds}, ms)")
    for name, value in median.items():
        print(f"  {name:9} {value:8.1f}")
    print(
        f"  whole/bounded: {median['whole'] / median['bounded']:.1f}x;"
        f" bounded - straight: {median['bounded'] - median['straight']:.1f} ms"
    )
    print("\nupstream sends a 100-byte answer's head and 10 bytes, then dies after D ms")
    print(f"  {'D ms':>6}  " + "  ".join(f"{name:>22}" for name in SETTINGS))
    for delay in DEATHS_MS:
        with raw_upstream(dies_after(delay)) as up_port, gateway(up_port) as gw_port:
            row = []
            for bound in SETTINGS.values():
                forwarding.WHOLE_WITHIN = bound
                row.append(f"{verdict(first_byte_and_status(gw_port, '/x')[1]):>22}")
        print(f"  {delay:>6}  " + "  ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
