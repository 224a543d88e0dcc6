"""The local stack on loopback: legacy stub, orders-v2 (under uvicorn and as a Lambda behind
the local Invoke API) and the gateway under `gateway serve`.

When GATEWAY_REDIS_URL is not set and `redis-server` is installed, a redis-server on
127.0.0.1:6399 (persistence off) holds the gateway's limits fleet-wide (routes.yaml's state:,
through GATEWAY_REDIS_URL); without one the limits are per process, as in the embedded default.

Run with `make run`. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
GATEWAY_PORT = int(os.environ.get("GATEWAY_PORT", "8080"))
LOCAL_REDIS_PORT = 6399
UVICORN = [sys.executable, "-m", "uvicorn", "--host", HOST, "--no-access-log"]

SERVICES: list[tuple[str, int, list[str], dict[str, str]]] = [
    ("legacy stub", 8001, [*UVICORN, "--port", "8001", "legacy_stub.app:app"], {}),
    ("orders-v2", 8002, [*UVICORN, "--port", "8002", "services.orders_v2.app:app"], {}),
    (
        "local Lambda Invoke API",
        9001,
        [
            sys.executable,
            "-m",
            "gateway.cli.main",
            "local-lambda",
            "--port",
            "9001",
            "--function",
            "orders-v2=services.orders_v2.app:handler",
        ],
        {},
    ),
    (
        "gateway",
        GATEWAY_PORT,
        # `gateway serve`: uvicorn as the gateway needs it (no Date/Server of its own, no
        # proxy-header rewriting, its access log off for the gateway's JSON lines).
        [
            sys.executable,
            "-m",
            "gateway.cli.main",
            "serve",
            "--host",
            HOST,
            "--port",
            str(GATEWAY_PORT),
        ],
        {
            "GATEWAY_CONFIG": os.environ.get("GATEWAY_CONFIG", str(ROOT / "routes.yaml")),
            # boto3 signs invokes even locally; these reach only the local Invoke API.
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        },
    ),
]


def local_redis() -> list[tuple[str, int, list[str], dict[str, str]]]:
    """A redis-server for the shared state, unless one is given or none is installed."""
    binary = shutil.which("redis-server")
    if os.environ.get("GATEWAY_REDIS_URL") or binary is None:
        return []
    port = str(LOCAL_REDIS_PORT)
    argv = [binary, "--bind", HOST, "--port", port, "--save", "", "--appendonly", "no"]
    argv += ["--loglevel", "warning"]
    return [("redis-server (fleet-wide limits)", LOCAL_REDIS_PORT, argv, {})]


def wait_for(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode}; see its output above")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{name} did not open port {port} within 30 s")


def banner() -> str:
    url = f"http://{HOST}:{GATEWAY_PORT}"
    return f"""
The local stack is up. The gateway is {url} (routes.yaml at the repo root).
Try:
  curl -si {url}/api/users                      # legacy (route everything-else)
  curl -si {url}/api/orders -H 'x-user-id: 42'  # 90% legacy, 10% orders-v2, sticky per user
  curl -si {url}/api/orders -H 'x-canary: on'   # always orders-v2 (route orders-canary-optin)
  curl -si {url}/v2/orders                      # orders-v2 through a rewrite
  curl -si {url}/lambda/orders                  # orders-v2 as a Lambda, via boto3
  curl -s  {url}/_gateway/routes                # the table in use
  gateway status {url}                 # weights, requests, 5xx, p99; limits fleet or local
Each answer names its route and target in x-gateway-route / x-gateway-target.
Ctrl-C stops the stack.
"""


def _stop(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    # A plain `kill` (SIGTERM) stops the stack as Ctrl-C does: every child is stopped too.
    signal.signal(signal.SIGTERM, _stop)
    processes: list[subprocess.Popen[bytes]] = []
    redis = local_redis()
    if redis:  # every child inherits it; the gateway's state: reads it
        os.environ["GATEWAY_REDIS_URL"] = f"redis://{HOST}:{LOCAL_REDIS_PORT}/0"
    try:
        for name, port, argv, env in [*redis, *SERVICES]:
            process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env})
            processes.append(process)
            wait_for(port, process, name)
            print(f"  {name} listening on {HOST}:{port}", flush=True)
        print(banner(), flush=True)
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
