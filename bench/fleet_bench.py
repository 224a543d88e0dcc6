"""Local vs fleet-wide protection state, on a loopback redis-server, in one run.

Two mechanisms, each local (in-process) and fleet (Redis, gateway/fleet/):

    slot      acquire + release of a free ConcurrencyLimit slot (`async with limit.slot()`)
    rate      one RateLimiter.check(key) that passes (a bucket too big to run dry)

each at concurrency 1 (latency-bound) and 16 (coroutines sharing the pool), in interleaved
rounds (A B A B, the order reversed every other round); medians are printed. CPU µs per op is
this process's CPU time (`time.process_time`) plus, for fleet, redis-server's own
(utime + stime from /proc/PID/stat), per op. Round trips per op are the store's calls per op.
It also times the hand-over of a freed fleet slot to a waiter (polling, see concurrency.py).

    .venv/bin/python bench/fleet_bench.py [--rounds 5] [--ops 2000]

The gateway-level req/s comparison (issue 12's goal: fleet >= 0.75x local) is
bench/fleet_gateway_bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.admission.ratelimit import RateLimiter
from gateway.config.model import StateSettings
from gateway.fleet.concurrency import FleetConcurrencyLimit
from gateway.fleet.rate import FleetRateLimiter
from gateway.fleet.store import StateStore
from gateway.protection.concurrency import ConcurrencyLimit

CONCURRENCY = (1, 16)
TICKS = os.sysconf("SC_CLK_TCK")
Op = Callable[[], Awaitable[object]]


@dataclass
class Samples:
    ops_per_s: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    server_us: list[float] = field(default_factory=list)
    trips: list[float] = field(default_factory=list)


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: apt-get install -y redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    server = subprocess.Popen(
        [*command, "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL
    )
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return server, port
        except OSError:
            time.sleep(0.01)
    server.kill()
    raise SystemExit("redis-server did not answer PING")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def measure(
    op: Op, ops: int, concurrency: int, store: StateStore | None, pid: int
) -> tuple[float, float, float, float]:
    calls = store.snapshot().calls if store else 0
    wall, cpu, server_cpu = time.perf_counter(), time.process_time(), cpu_seconds(pid)

    async def worker(count: int) -> None:
        for _ in range(count):
            await op()

    await asyncio.gather(*(worker(ops // concurrency) for _ in range(concurrency)))
    done = ops // concurrency * concurrency
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    server_cpu = cpu_seconds(pid) - server_cpu if store is not None else 0.0
    trips = (store.snapshot().calls - calls) / done if store else 0.0
    return done / wall, cpu / done * 1e6, server_cpu / done * 1e6, trips


async def handover(store: StateStore, tries: int) -> list[float]:
    """ms from a holder's release to the waiting request's grant."""
    limit = FleetConcurrencyLimit(
        store,
        name="handover",
        limit=1,
        queue_timeout=5.0,
        lease=10.0,
        local=ConcurrencyLimit(1, 5.0),
    )
    taken: list[float] = []
    for _ in range(tries):
        holder = limit.slot()
        await holder.__aenter__()

        async def wait() -> float:
            async with limit.slot():
                return time.perf_counter()

        waiter = asyncio.ensure_future(wait())
        await asyncio.sleep(0.1)  # the waiter has backed off to its longest pause
        released = time.perf_counter()
        await holder.__aexit__(None, None, None)
        taken.append((await waiter - released) * 1000)
    return taken


async def main(rounds: int, ops: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        server, port = start_redis(workdir)
        try:
            await run(rounds, ops, server.pid, port)
        finally:
            os.kill(server.pid, signal.SIGTERM)
            server.wait(timeout=5)


async def run(rounds: int, ops: int, pid: int, port: int) -> None:
    settings = StateSettings(redis=f"redis://127.0.0.1:{port}/0", timeout=1.0)
    store = StateStore(settings)
    local_limit = ConcurrencyLimit(1000, 1.0)
    fleet_limit = FleetConcurrencyLimit(
        store, name="bench", limit=1000, queue_timeout=1.0, lease=30.0, local=local_limit
    )
    local_rate = RateLimiter(1e9, 10**9)
    fleet_rate = FleetRateLimiter(store, name="bench", rate=1e9, burst=10**9, local=local_rate)

    async def local_slot() -> None:
        async with local_limit.slot():
            pass

    async def fleet_slot() -> None:
        async with fleet_limit.slot():
            pass

    async def local_check() -> object:
        return local_rate.check("client")

    cases: dict[str, tuple[Op, StateStore | None]] = {
        "slot local": (local_slot, None),
        "slot fleet": (fleet_slot, store),
        "rate local": (local_check, None),
        "rate fleet": (lambda: fleet_rate.check("client"), store),
    }
    samples = {(name, c): Samples() for name in cases for c in CONCURRENCY}
    try:
        for op, case_store in cases.values():  # warm up: connections, scripts
            await measure(op, 200, 16, case_store, pid)
        for number in range(rounds):
            order = list(cases.items()) if number % 2 == 0 else list(reversed(cases.items()))
            for name, (op, case_store) in order:
                for concurrency in CONCURRENCY:
                    rate, cpu, server, trips = await measure(op, ops, concurrency, case_store, pid)
                    sample = samples[(name, concurrency)]
                    sample.ops_per_s.append(rate)
                    sample.cpu_us.append(cpu)
                    sample.server_us.append(server)
                    sample.trips.append(trips)
        report(samples)
        taken = sorted(await handover(store, 20))
        print(
            f"\nfleet slot hand-over to a waiter: median {statistics.median(taken):.1f} ms, "
            f"max {taken[-1]:.1f} ms (poll backoff 2 ms doubling to 25 ms)"
        )
    finally:
        await store.close()


def report(samples: dict[tuple[str, int], Samples]) -> None:
    print(
        f"{'case':<12}{'conc':>5}{'ops/s':>12}{'CPU µs/op':>11}{'redis µs/op':>12}{'trips/op':>10}"
    )
    for (name, concurrency), sample in samples.items():
        print(
            f"{name:<12}{concurrency:>5}{statistics.median(sample.ops_per_s):>12,.0f}"
            f"{statistics.median(sample.cpu_us):>11.1f}{statistics.median(sample.server_us):>12.1f}"
            f"{statistics.median(sample.trips):>10.2f}"
        )
    print("\nfleet / local (medians; CPU includes redis-server's for fleet):")
    for mechanism in ("slot", "rate"):
        for concurrency in CONCURRENCY:
            local = samples[(f"{mechanism} local", concurrency)]
            fleet = samples[(f"{mechanism} fleet", concurrency)]
            throughput = statistics.median(fleet.ops_per_s) / statistics.median(local.ops_per_s)
            fleet_cpu = statistics.median(fleet.cpu_us) + statistics.median(fleet.server_us)
            cpu = fleet_cpu / statistics.median(local.cpu_us)
            added = fleet_cpu - statistics.median(local.cpu_us)
            print(
                f"  {mechanism} c={concurrency:<3} ops/s {throughput:.4f}x   CPU/op {cpu:.0f}x"
                f"   (+{added:.0f} µs CPU per op, gateway + redis)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=2000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.ops))
