"""A shadowed route against the same route without `shadow`, through one gateway process.

Two tiny upstreams (bench/tiny_upstream.py: legacy and candidate, the same small JSON body)
and one gateway (uvicorn, one worker, uvloop, httptools) serving two routes that differ only
in `shadow: {target: candidate, percent: 100}`: every request of `/shadowed` is copied and
compared (noise 5%). wrk -t1 -cN --latency hits each route in turn, rounds interleaved;
the gateway's CPU (user + system, /proc) over each run divided by the requests wrk completed
is its CPU µs per request. Medians of rounds are printed.

    .venv/bin/python bench/shadow_bench.py [--rounds 3] [--seconds 5] [--connections 16]

Everything on 127.0.0.1; every process started is stopped (by its group) on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_bench import (  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed")
    wrk = Wrk(binary, ())
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
