"""µs per ``RouteTable.match`` at 10, 1,000 and 10,000 routes: is routing flat?

Tables are built from ``GatewayConfig``/``Route`` objects directly (no YAML): routes
``/svc/N/items`` (every 3rd with a methods condition, every 5th with a header condition), a
header-conditioned canary route sharing the path of a service route in the middle of the
table, and a catch-all ``/``. Four requests per table:

    deep hit       GET /svc/LAST/items/42/details: the last route added, matched below its path
    miss           GET /svc/unknown/items/42: no service route, falls back to the catch-all
    header hit     GET /svc/MID/items/7 with x-canary: on: the header-conditioned route
    header miss    the same without the header: the canary refuses, its sibling answers

Each is timed timeit-style (GC off, this process's CPU time, batches of ~0.1 s) in
interleaved rounds over every table and request; the medians are printed with the flatness
ratio (10,000 routes vs 10). Goal: <= 2 µs per match, and flat (ratio <= 1.3x).

    .venv/bin/python bench/routing_bench.py [--sizes 10,1000,10000] [--rounds 7] [--json F]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config.model import GatewayConfig, HttpTarget, Route
from gateway.headers import HeaderView
from gateway.routing import RouteMatch, RouteTable

SIZES = (10, 1_000, 10_000)
GOAL_US = 2.0
GOAL_FLAT = 1.3
BATCH_S = 0.1
EXIT_FAILED = 1

TARGETS = {
    "legacy": HttpTarget("legacy", "http://127.0.0.1:8001"),
    "orders-v2": HttpTarget("orders-v2", "http://127.0.0.1:8002"),
}
SPLIT = (("legacy", 90.0), ("orders-v2", 10.0))
# What a browser behind an ALB sends, as the proxy sees it (raw ASGI pairs).
RAW_HEADERS = [
    (b"host", b"gateway.example.com"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) bench"),
    (b"accept", b"application/json"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"accept-language", b"en-GB,en;q=0.9"),
    (b"x-amzn-trace-id", b"Root=1-62fa9327-21cdd4da4c6db451490a5fb7"),
    (b"x-forwarded-for", b"203.0.113.9"),
    (b"x-forwarded-proto", b"https"),
]


def service_route(index: int) -> Route:
    """``/svc/INDEX/items``; some with a methods condition, some with a header one."""
    methods = frozenset({"GET", "POST"}) if index % 3 == 1 else None
    headers = (("x-tenant", f"t{index}"),) if index % 5 == 2 else ()
    return Route(
        name=f"svc-{index}",
        path=f"/svc/{index}/items",
        split=SPLIT,
        methods=methods,
        headers=headers,
        line=index + 1,
    )


@dataclass(frozen=True)
class Table:
    size: int
    table: RouteTable
    build_ms: float
    last: int  # index of the last service route (no conditions)
    middle: int  # index of the service route sharing its path with the canary


def build_table(size: int) -> Table:
    """``size`` routes in all: size-2 service routes, the canary, the catch-all."""
    services = max(size - 2, 1)
    middle = services // 2
    routes = [service_route(index) for index in range(services)]
    # The deep hit and the header cases want routes without conditions of their own.
    last = services - 1
    routes[last] = Route(name=f"svc-{last}", path=f"/svc/{last}/items", split=SPLIT)
    routes[middle] = Route(name=f"svc-{middle}", path=f"/svc/{middle}/items", split=SPLIT)
    routes.append(
        Route(
            name="canary",
            path=f"/svc/{middle}/items",
            split=(("orders-v2", 100.0),),
            headers=(("x-canary", "on"),),
        )
    )
    routes.append(Route(name="catch-all", path="/", split=(("legacy", 100.0),)))
    config = GatewayConfig(targets=TARGETS, routes=tuple(routes))
    started = time.perf_counter()
    table = RouteTable(config)
    build_ms = (time.perf_counter() - started) * 1e3
    return Table(len(routes), table, build_ms, last, middle)


@dataclass
class Case:
    """One request against one table, and its timings (µs per match, one per round)."""

    size: int
    name: str
    method: str
    path: str
    headers: HeaderView
    expect: str
    match: Callable[[str, str, HeaderView], RouteMatch | None]
    number: int = 0
    us: list[float] = field(default_factory=list)

    def timer(self) -> timeit.Timer:
        return timeit.Timer(
            "match(method, path, headers)",
            globals={
                "match": self.match,
                "method": self.method,
                "path": self.path,
                "headers": self.headers,
            },
            timer=time.process_time,
        )


CASE_NAMES = ("deep hit", "miss -> catch-all", "header hit", "header miss")


def cases_for(built: Table) -> list[Case]:
    plain = HeaderView(RAW_HEADERS)
    canary = HeaderView([*RAW_HEADERS, (b"x-canary", b"on")])
    match = built.table.match
    size = built.size
    return [
        Case(size, CASE_NAMES[0], "GET", f"/svc/{built.last}/items/42/details", plain,
             f"svc-{built.last}", match),
        Case(size, CASE_NAMES[1], "GET", "/svc/unknown/items/42", plain, "catch-all", match),
        Case(size, CASE_NAMES[2], "GET", f"/svc/{built.middle}/items/7", canary, "canary", match),
        Case(size, CASE_NAMES[3], "GET", f"/svc/{built.middle}/items/7", plain,
             f"svc-{built.middle}", match),
    ]  # fmt: skip


def check(case: Case) -> None:
    found = case.match(case.method, case.path, case.headers)
    got = found.route.name if found else None
    if got != case.expect:
        raise SystemExit(f"{case.size} routes, {case.name}: matched {got!r}, not {case.expect!r}")


def calibrate(case: Case) -> None:
    number, _ = case.timer().autorange()
    seconds = case.timer().timeit(number)
    case.number = max(number, int(number * BATCH_S / seconds)) if seconds else number


def measure(cases: Sequence[Case], rounds: int) -> None:
    timers = [(case, case.timer()) for case in cases]
    for round_no in range(rounds):
        for case, timer in timers if round_no % 2 == 0 else timers[::-1]:
            case.us.append(timer.timeit(case.number) / case.number * 1e6)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def report(tables: Sequence[Table], cases: Sequence[Case]) -> tuple[str, list[str], bool]:
    sizes = [t.size for t in tables]
    by_key = {(c.size, c.name): c for c in cases}
    header = f"{'request':<18}" + "".join(f"{f'{s:,} routes':>15}" for s in sizes)
    header += f"{'flatness':>10}"
    lines = [header, "-" * len(header)]
    verdicts: list[str] = []
    ok = True
    for name in CASE_NAMES:
        medians = [_median(by_key[(size, name)].us) for size in sizes]
        flat = medians[-1] / medians[0] if medians[0] else float("nan")
        cells = "".join(f"{m:>12.3f} µs" for m in medians)
        lines.append(f"{name:<18}{cells}{flat:>9.2f}x")
        worst = max(medians)
        good = worst <= GOAL_US and (len(sizes) < 2 or flat <= GOAL_FLAT)
        ok = ok and good
        verdicts.append(
            f"{name}: worst {worst:.3f} µs, {sizes[-1]:,} vs {sizes[0]:,} routes {flat:.2f}x "
            f"{'ok' if good else 'MISSED'}"
        )
    builds = ", ".join(f"{t.size:,} routes {t.build_ms:.1f} ms" for t in tables)
    lines.append(f"table build (once per config load): {builds}")
    return "\n".join(lines), verdicts, ok


def _sizes(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text}") from exc
    if not values or min(values) < 3:
        raise argparse.ArgumentTypeError("table sizes must be >= 3")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="µs per RouteTable.match by table size.")
    parser.add_argument("--sizes", type=_sizes, default=SIZES, help="e.g. 10,1000,10000")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    tables = [build_table(size) for size in args.sizes]
    cases = [case for built in tables for case in cases_for(built)]
    for case in cases:
        check(case)
        calibrate(case)
    print(
        f"routing bench: {len(cases)} table x request pairs, {args.rounds} interleaved rounds "
        f"of ~{BATCH_S:g}s batches (GC off)",
        flush=True,
    )
    measure(cases, args.rounds)
    text, verdicts, ok = report(tables, cases)
    print(f"\nµs per RouteTable.match, median of {args.rounds} rounds")
    print(text)
    for verdict in verdicts:
        print(verdict)
    print(f"goal: <= {GOAL_US:g} µs per match, flat (largest vs smallest table <= {GOAL_FLAT}x)")
    if args.json is not None:
        payload = {
            "settings": {
                "sizes": list(args.sizes),
                "rounds": args.rounds,
                "python": platform.python_version(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            "tables": [{"size": t.size, "build_ms": t.build_ms} for t in tables],
            "cases": [
                {"size": c.size, "request": c.name, "number": c.number, "us": c.us} for c in cases
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"results written to {args.json}")
    del ok  # a missed goal is reported, not an error
    return 0


if __name__ == "__main__":
    sys.exit(main())
