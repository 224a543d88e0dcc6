"""A shadowed route against the same route without `shadow`, through one gateway process.

Two tiny upstreams (bench/tiny_upstream.py: legacy and candidate, the same small JSON body)
and one gateway (uvicorn, one worker, uvloop, httptools) serving two routes that differ only
in `shadow: {target: candidate, percent: 100}`: every request of `/shadowed` is copied and
compared (noise 5%). wrk -t1 -cN --latency hits each route in turn, rounds interleaved;
the gateway's CPU (user + system, /proc) over each run divided by the requests wrk completed
is its CPU µs per request. Medians of rounds are printed.

wrk is a closed loop: at 16 connections it saturates the one-worker gateway, so the shadow's
extra CPU shows as client latency.  ``--rate R[,R...]`` replaces wrk with an open-loop,
fixed-rate client in this process (asyncio, raw sockets, a pool of ``--connections`` keep-alive
connections): request i is due at start + i/R whatever the earlier answers do; a free
connection takes the next due request, and its latency counts from when it was due, not from
when it was sent, so a queue in the gateway shows up instead of being hidden (coordinated
omission).  Per route and rate it prints the achieved rate, p50/p90/p99 and the gateway's CPU
µs per request, and the shadowed/plain ratios, medians of interleaved rounds.

    .venv/bin/python bench/shadow_bench.py [--rounds 3] [--seconds 5] [--connections 16]
    .venv/bin/python bench/shadow_bench.py --rate 600,1200 [--rounds 3] [--seconds 5]

Everything on 127.0.0.1; every process started is stopped (by its group) on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_bench import (  # noqa: E402
    HOST,
    BenchError,
    Server,
    Wrk,
    _free_port,
    _uvicorn,
    group_cpu_seconds,
    parse_wrk,
    spawn,
    wait_ready,
)

ROUTES = """\
targets:
  legacy: {{url: "http://127.0.0.1:{legacy}"}}
  candidate: {{url: "http://127.0.0.1:{candidate}"}}
routes:
  - name: shadowed
    path: /shadowed
    rewrite: /
    target: legacy
    shadow:
      target: candidate
      compare: {{noise: 5%}}
  - name: plain
    path: /plain
    rewrite: /
    target: legacy
"""


def measure(
    wrk: Wrk, gateway: Server, path: str, connections: int, seconds: int
) -> dict[str, float]:
    import proxy_bench  # noqa: PLC0415

    proxy_bench.REQUEST_PATH = path
    before = group_cpu_seconds(gateway.proc.pid) or 0.0
    result = parse_wrk(path, wrk.run(gateway.port, connections, seconds))
    after = group_cpu_seconds(gateway.proc.pid) or 0.0
    return {
        "rps": result.rps,
        "p50": result.p50_ms,
        "p99": result.p99_ms,
        "cpu_us": (after - before) / max(result.requests, 1) * 1e6,
        "errors": result.errors,
    }


# --------------------------------------------------------------------------- fixed rate

_T = TypeVar("_T")
DRAIN_S = 3.0  # after the last due time, how long late answers are awaited
REQUEST_TIMEOUT_S = 5.0
SETTLE_S = 0.3  # lets the last shadow copies finish before the gateway's CPU is read


async def _one_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one GET on a keep-alive connection, read the whole answer, return its status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def _open_loop(
    port: int, path: str, rate: float, seconds: float, connections: int
) -> tuple[list[float], int, float]:
    """Requests due at a fixed rate for ``seconds``.

    Returns the latencies (s, from each request's due time), the errors and the seconds from
    the first due time to the last answer.
    """
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: shadow-bench\r\n\r\n"
    ).encode()
    total = int(rate * seconds)
    # time.perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
    clock = time.perf_counter
    start = clock() + 0.05
    latencies: list[float] = []
    non_200 = 0
    last_done = start
    next_index = 0

    async def worker() -> None:
        nonlocal non_200, last_done, next_index
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while next_index < total:
                due = start + next_index / rate
                next_index += 1
                delay = due - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    status = await asyncio.wait_for(
                        _one_request(reader, writer, request), REQUEST_TIMEOUT_S
                    )
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                    writer.close()  # not answered: counted below
                    reader, writer = await asyncio.open_connection(HOST, port)
                    continue
                done = clock()
                if status != 200:
                    non_200 += 1
                latencies.append(done - due)
                last_done = max(last_done, done)
        finally:
            writer.close()

    tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    finished, pending = await asyncio.wait(tasks, timeout=seconds + DRAIN_S + 0.05)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in finished:
        if not task.cancelled() and task.exception() is not None:
            raise BenchError(f"fixed-rate client failed: {task.exception()!r}")
    # Errors: answers other than 200, plus requests never answered (failed or still pending).
    return latencies, non_200 + total - len(latencies), last_done - start


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def measure_rate(
    gateway: Server, path: str, rate: float, seconds: float, connections: int
) -> dict[str, float]:
    before = group_cpu_seconds(gateway.proc.pid) or 0.0
    latencies, errors, span = _run_loop(_open_loop(gateway.port, path, rate, seconds, connections))
    time.sleep(SETTLE_S)
    after = group_cpu_seconds(gateway.proc.pid) or 0.0
    ordered = sorted(latencies)
    return {
        "rps": len(ordered) / max(span, 1e-9),
        "p50": _percentile(ordered, 50) * 1e3,
        "p90": _percentile(ordered, 90) * 1e3,
        "p99": _percentile(ordered, 99) * 1e3,
        "cpu_us": (after - before) / max(len(ordered), 1) * 1e6,
        "errors": float(errors),
    }


def _run_loop(coro: Coroutine[Any, Any, _T]) -> _T:
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: PLC0415

        return uvloop.run(coro)
    return asyncio.run(coro)


def run_fixed_rate(
    gateway: Server, rates: list[float], rounds: int, seconds: int, conns: int
) -> None:
    paths = ["/plain", "/shadowed"]
    for rate in rates:
        for path in paths:  # warm-up at this rate
            measure_rate(gateway, path, rate, 1, conns)
        results: dict[str, list[dict[str, float]]] = {p: [] for p in paths}
        for i in range(rounds):
            for path in paths if i % 2 == 0 else paths[::-1]:
                m = measure_rate(gateway, path, rate, seconds, conns)
                results[path].append(m)
                print(
                    f"  {rate:.0f}/s round {i + 1} {path:<10} {m['rps']:>6.0f}/s "
                    f"p50 {m['p50']:.2f} p90 {m['p90']:.2f} p99 {m['p99']:.2f} ms "
                    f"CPU {m['cpu_us']:.0f} µs/req errors {m['errors']:.0f}",
                    flush=True,
                )
        report_rate(results, rate, conns)


def report_rate(results: dict[str, list[dict[str, float]]], rate: float, connections: int) -> None:
    med = {p: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for p, rs in results.items()}
    rounds = len(results["/plain"])
    print(f"fixed rate {rate:.0f}/s, pool of {connections} connections, medians of {rounds} rounds")
    print(
        f"{'route':<10} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'CPU µs/req':>11} {'errors':>7}"
    )
    for path, m in med.items():
        print(
            f"{path:<10} {m['rps']:>8.0f} {m['p50']:>8.2f} {m['p90']:>8.2f} {m['p99']:>8.2f} "
            f"{m['cpu_us']:>11.0f} {m['errors']:>7.0f}"
        )
    plain, shadowed = med["/plain"], med["/shadowed"]
    print(
        f"shadow/plain at {rate:.0f}/s: p50 x{shadowed['p50'] / plain['p50']:.2f}, "
        f"p90 x{shadowed['p90'] / plain['p90']:.2f}, "
        f"p99 x{shadowed['p99'] / plain['p99']:.2f}, "
        f"CPU x{shadowed['cpu_us'] / plain['cpu_us']:.2f}  (goal: p50, p99 <= x1.05; CPU <= x2.2)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--rate",
        default="",
        help="open loop at these fixed rates (req/s, comma-separated) instead of wrk",
    )
    args = parser.parse_args()
    rates = [float(r) for r in args.rate.split(",") if r.strip()]
    binary = shutil.which("wrk")
    if binary is None and not rates:
        raise SystemExit("wrk is not installed")
    wrk = Wrk(binary or "wrk", ())
    servers: list[Server] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        stack.callback(_stop_all, servers)
        logs, env = Path(tmp), dict(os.environ)
        ports = {name: _free_port() for name in ("legacy", "candidate", "gateway")}
        tiny = str(Path(__file__).with_name("tiny_upstream.py"))
        for name in ("legacy", "candidate"):
            cmd = [sys.executable, tiny, "--port", str(ports[name])]
            servers.append(spawn(name, cmd, ports[name], logs, env))
        config = logs / "routes.yaml"
        config.write_text(ROUTES.format(**ports))
        env = {**env, "GATEWAY_CONFIG": str(config), "GATEWAY_ACCESS_LOG": "off"}
        gateway = spawn(
            "gateway", _uvicorn("gateway.app:app", ports["gateway"]), ports["gateway"], logs, env
        )
        servers.append(gateway)
        for server in servers:
            wait_ready(server)
        if rates:
            run_fixed_rate(gateway, rates, args.rounds, args.seconds, args.connections)
            return
        results: dict[str, list[dict[str, float]]] = {"/plain": [], "/shadowed": []}
        for path in results:  # warm-up
            measure(wrk, gateway, path, args.connections, 1)
        for _ in range(args.rounds):
            for path, runs in results.items():
                runs.append(measure(wrk, gateway, path, args.connections, args.seconds))
        report(results, args.connections)


def _stop_all(servers: list[Server]) -> None:
    for server in servers:
        server.stop()


def report(results: dict[str, list[dict[str, float]]], connections: int) -> None:
    med = {p: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for p, rs in results.items()}
    print(f"{connections} connections, medians of {len(results['/plain'])} rounds")
    print(
        f"{'route':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>11} {'errors':>7}"
    )
    for path, m in med.items():
        print(
            f"{path:<10} {m['rps']:>8.0f} {m['p50']:>8.2f} {m['p99']:>8.2f} "
            f"{m['cpu_us']:>11.0f} {m['errors']:>7.0f}"
        )
    plain, shadowed = med["/plain"], med["/shadowed"]
    print(
        f"shadow/plain: p50 x{shadowed['p50'] / plain['p50']:.2f}, "
        f"p99 x{shadowed['p99'] / plain['p99']:.2f}, "
        f"CPU x{shadowed['cpu_us'] / plain['cpu_us']:.2f}, "
        f"req/s x{shadowed['rps'] / plain['rps']:.2f}"
    )


if __name__ == "__main__":
    main()
