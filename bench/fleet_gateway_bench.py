"""The gateway with `max_concurrency` and `rate` on a route: local state vs Redis, in one run.

Two `gateway serve` processes (one worker each) on the same table, one without `state:` and
one with a loopback redis-server; wrk drives each in interleaved rounds (A B, then B A), with
a limit and a rate too large to refuse anything, so both do the same work but for the state.
Per request: req/s, CPU µs of the gateway (and of redis-server for the fleet one, from
/proc/PID/stat), and Redis round trips (the store's call count in /_gateway/metrics).

    .venv/bin/python bench/fleet_gateway_bench.py [--rounds 2] [--seconds 3] [--connections 16]

Goal (issue 12): fleet-wide >= 0.75x local req/s, one round trip per protection per request.
`--connections 1` shows the unbatched case (each protection its own round trip).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TICKS = os.sysconf("SC_CLK_TCK")
TABLE = """\
targets:
  up: {{url: "http://127.0.0.1:{up}", max_concurrency: 10000, breaker: off}}
routes:
  - {{name: limited, path: /, target: up, rate: 1000000/s, burst: 1000000}}
"""
_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_REQUESTS = re.compile(r"(\d+) requests in")
_CALLS = re.compile(r"^gateway_state_call_duration_seconds_count ([0-9.e+]+)$", re.M)
_PERCENTILE = re.compile(r"^\s+(50|99)%\s+([0-9.]+)(us|ms|s)$", re.M)
_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def free_port() -> int:
    with socket.create_server((HOST, 0)) as sock:
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a child exited ({process.args!r})")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def store_calls(port: int) -> float:
    with urllib.request.urlopen(f"http://{HOST}:{port}/_gateway/metrics", timeout=5) as reply:
        found = _CALLS.search(reply.read().decode())
    return float(found.group(1)) if found else 0.0


def wrk(port: int, seconds: int, connections: int) -> tuple[float, int, dict[str, float]]:
    """req/s, requests, and the p50/p99 latency in ms."""
    wrk_binary = shutil.which("wrk")
    if wrk_binary is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    cmd = [wrk_binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    cmd.append(f"http://{HOST}:{port}/x")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    rps, requests = _RPS.search(out), _REQUESTS.search(out)
    if rps is None or requests is None or "Non-2xx" in out:
        raise SystemExit(f"wrk: refused or unparsable:\n{out}")
    latency = {f"p{p}": float(v) * _TO_MS[unit] for p, v, unit in _PERCENTILE.findall(out)}
    return float(rps.group(1)), int(requests.group(1)), latency


def measure(port: int, pids: list[int], args: argparse.Namespace, fleet: bool) -> dict[str, float]:
    before = [cpu_seconds(pid) for pid in pids]
    calls_before = store_calls(port) if fleet else 0.0
    rps, requests, latency = wrk(port, args.seconds, args.connections)
    spent = [cpu_seconds(pid) - start for pid, start in zip(pids, before, strict=True)]
    calls = (store_calls(port) - calls_before) if fleet else 0.0
    redis_us = spent[1] / requests * 1e6 if fleet else 0.0
    return {
        "rps": rps,
        "cpu_us": sum(spent) / requests * 1e6,
        "redis_us": redis_us,
        "trips": calls / requests,
        **latency,
    }


def start(argv: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        argv, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port, process)
    return process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        raise SystemExit("redis-server is not installed: apt-get install -y redis-server")
    ports = {name: free_port() for name in ("up", "redis", "local", "fleet")}
    children: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "routes.yaml"
        table.write_text(TABLE.format(up=ports["up"]))
        redis_url = f"redis://{HOST}:{ports['redis']}/0"
        env = {"GATEWAY_ACCESS_LOG": "off", "GATEWAY_REDIS_URL": ""}
        serve = [sys.executable, "-m", "gateway.cli.main", "serve", str(table), "--port"]
        try:
            upstream = [sys.executable, str(BENCH / "tiny_upstream.py"), "--port"]
            children.append(start([*upstream, str(ports["up"])], ports["up"], {}))
            redis = [redis_binary, "--port", str(ports["redis"]), "--bind", HOST, "--save", ""]
            children.append(start([*redis, "--appendonly", "no", "--dir", tmp], ports["redis"], {}))
            redis_pid = children[-1].pid
            children.append(start([*serve, str(ports["local"])], ports["local"], env))
            local_pid = children[-1].pid
            fleet_env = {**env, "GATEWAY_REDIS_URL": redis_url}
            children.append(start([*serve, str(ports["fleet"])], ports["fleet"], fleet_env))
            fleet_pid = children[-1].pid
            runs: dict[str, list[dict[str, float]]] = {"local": [], "fleet": []}
            wrk(ports["local"], 1, args.connections)  # warm-up
            wrk(ports["fleet"], 1, args.connections)
            for index in range(args.rounds):
                order = ("local", "fleet") if index % 2 == 0 else ("fleet", "local")
                for name in order:
                    pids = [local_pid] if name == "local" else [fleet_pid, redis_pid]
                    runs[name].append(measure(ports[name], pids, args, name == "fleet"))
        finally:
            for child in reversed(children):
                child.send_signal(signal.SIGTERM)
                child.wait(timeout=10)
    report(runs)
    return 0


def report(runs: dict[str, list[dict[str, float]]]) -> None:
    med = {
        name: {key: statistics.median(run[key] for run in found) for key in found[0]}
        for name, found in runs.items()
    }
    head = f"{'req/s':>10}{'CPU µs/req':>12}{'of it Redis':>13}{'trips/req':>11}"
    print(f"{'state':8}{head}{'p50 ms':>9}{'p99 ms':>9}")
    for name, v in med.items():
        line = f"{v['rps']:>10.0f}{v['cpu_us']:>12.0f}{v['redis_us']:>13.0f}{v['trips']:>11.2f}"
        print(f"{name:8}{line}{v['p50']:>9.2f}{v['p99']:>9.2f}")
    ratio = med["fleet"]["rps"] / med["local"]["rps"]
    cpu_ratio = med["fleet"]["cpu_us"] / med["local"]["cpu_us"]
    print(f"fleet/local req/s: {ratio:.2f}x (goal >= 0.75x); CPU per request: {cpu_ratio:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
