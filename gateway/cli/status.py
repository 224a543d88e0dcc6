"""`gateway status URL`: a running gateway's routes, their live weights, and how each target
is doing since the gateway started: requests, error rate (5xx) and p99 from its histogram."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from gateway.cli.credentials import add_admin_key, admin_headers
from gateway.cli.diff import percent_text
from gateway.cli.limits import read_limits, render_limits
from gateway.config.model import CounterSnapshot
from gateway.rollouts.metrics import (
    MetricsUnavailable,
    PrometheusSource,
    Window,
    latency,
    lifetime,
    percent,
)

ROUTES_PATH = "/_gateway/routes"
HEADER = ("ROUTE", "TARGET", "WEIGHT", "REQUESTS", "5XX RATE", "P99")
RIGHT = (False, False, True, True, True, True)


@dataclass(frozen=True, slots=True)
class Row:
    route: str
    target: str
    weight: float | None  # None: served (a fallback, an old split) but not in the split now
    window: Window


def rows(
    routes: list[dict[str, Any]], counters: dict[tuple[str, str], CounterSnapshot]
) -> list[Row]:
    """One row per target of each route, in the table's order, then targets seen only in metrics."""
    found = []
    for route in routes:
        name = str(route["name"])
        split: dict[str, float] = {str(t): float(w) for t, w in route.get("split", {}).items()}
        seen = sorted(target for (owner, target) in counters if owner == name)
        for target in [*split, *(t for t in seen if t not in split)]:
            counts = counters.get((name, target), CounterSnapshot(target))
            found.append(Row(name, target, split.get(target), lifetime(counts)))
    return found


def render(found: list[Row]) -> str:
    cells = [HEADER]
    previous = None
    for row in found:
        served = row.window.requests > 0
        cells.append(
            (
                row.route if row.route != previous else "",
                row.target,
                percent_text(row.weight) if row.weight is not None else "-",
                f"{row.window.requests:.0f}",
                percent(row.window.error_rate) if served else "-",
                latency(row.window.p99),
            )
        )
        previous = row.route
    widths = [max(len(line[column]) for line in cells) for column in range(len(HEADER))]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(line, widths, RIGHT, strict=True)
        ).rstrip()
        for line in cells
    )


def read_routes(
    base_url: str, timeout: float = 10.0, admin_key: str | None = None
) -> list[dict[str, Any]]:
    url = base_url.rstrip("/") + ROUTES_PATH
    request = urllib.request.Request(url, headers=admin_headers(admin_key))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            described = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        hint = " (give --admin-key or GATEWAY_ADMIN_KEY)" if exc.code in (401, 403) else ""
        raise MetricsUnavailable(f"cannot read {url}: {exc.code} {exc.reason}{hint}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MetricsUnavailable(f"cannot read {url}: {getattr(exc, 'reason', exc)}") from exc
    routes = described.get("routes") if isinstance(described, dict) else None
    if not isinstance(routes, list):
        raise MetricsUnavailable(f"{url}: no route list in the answer")
    return routes


def run_status(args: argparse.Namespace) -> int:
    try:
        routes = read_routes(args.url, admin_key=args.admin_key)
        counters = PrometheusSource(args.url, admin_key=args.admin_key).scrape()
        limits = read_limits(args.url, admin_key=args.admin_key)
    except MetricsUnavailable as exc:
        print(f"gateway status: {exc}", file=sys.stderr)
        return 1
    print(render(rows(routes, counters)))
    table = render_limits(limits)
    if table:
        print(f"\n{table}")
    return 0


def add_status_verb(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verb = verbs.add_parser("status", help="a running gateway's weights, requests, 5xx and p99")
    verb.add_argument("url", metavar="URL", help="the gateway's base URL")
    add_admin_key(verb)
    verb.set_defaults(run=run_status)
