"""`gateway status URL [--window 5m] [--watch] [-o json]`: a running gateway's routes, their
live weights, and how each target did over the last `--window` (the gateway's per-minute
buckets, `/_gateway/recent`): requests, error rate (5xx), p50 and p99. A warning line when the
gateway refused the file on disk at its last reload (it serves the table before it)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from gateway.cli.credentials import add_admin_key, admin_headers
from gateway.cli.diff import percent_text
from gateway.cli.limits import read_limits, render_limits
from gateway.config.model import CounterSnapshot
from gateway.rollouts.metrics import (
    MetricsUnavailable,
    Window,
    latency,
    lifetime,
    percent,
)

ROUTES_PATH = "/_gateway/routes"
RECENT_PATH = "/_gateway/recent"
HEADER = ("ROUTE", "TARGET", "WEIGHT", "REQUESTS", "5XX RATE", "P50", "P99")
RIGHT = (False, False, True, True, True, True, True)


@dataclass(frozen=True, slots=True)
class Row:
    route: str
    target: str
    weight: float | None  # None: served (a fallback, an old split) but not in the split now
    window: Window
    p50: float | None = None


def recent_rows(routes: list[dict[str, Any]], recent: list[dict[str, Any]]) -> list[Row]:
    """One row per target of each route over the window, as `rows` does since the start."""
    seen = {(str(r["route"]), str(r["target"])): r for r in recent}
    found = []
    for route in routes:
        name = str(route["name"])
        split: dict[str, float] = {str(t): float(w) for t, w in route.get("split", {}).items()}
        extra = sorted(target for (owner, target) in seen if owner == name and target not in split)
        for target in [*split, *extra]:
            row = seen.get((name, target), {})
            window = Window(row.get("requests", 0.0), row.get("errors", 0.0), row.get("p99"))
            found.append(Row(name, target, split.get(target), window, row.get("p50")))
    return found


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
                latency(row.p50),
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


def read_admin(
    base_url: str, path: str, timeout: float = 10.0, admin_key: str | None = None
) -> dict[str, Any]:
    url = base_url.rstrip("/") + path
    request = urllib.request.Request(url, headers=admin_headers(admin_key))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            described = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        hint = " (give --admin-key or GATEWAY_ADMIN_KEY)" if exc.code in (401, 403) else ""
        raise MetricsUnavailable(f"cannot read {url}: {exc.code} {exc.reason}{hint}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MetricsUnavailable(f"cannot read {url}: {getattr(exc, 'reason', exc)}") from exc
    if not isinstance(described, dict):
        raise MetricsUnavailable(f"{url}: not a JSON object")
    return described


def read_routes(
    base_url: str, timeout: float = 10.0, admin_key: str | None = None
) -> list[dict[str, Any]]:
    routes = read_admin(base_url, ROUTES_PATH, timeout, admin_key).get("routes")
    if not isinstance(routes, list):
        raise MetricsUnavailable(f"{base_url}{ROUTES_PATH}: no route list in the answer")
    return routes


def snapshot(args: argparse.Namespace) -> dict[str, Any]:
    """What one look shows: the routes, the window's rows, the last refused reload."""
    described = read_admin(args.url, ROUTES_PATH, admin_key=args.admin_key)
    routes = described.get("routes")
    if not isinstance(routes, list):
        raise MetricsUnavailable(f"{args.url}{ROUTES_PATH}: no route list in the answer")
    query = f"{RECENT_PATH}?{urlencode({'window': args.window})}"
    recent = read_admin(args.url, query, admin_key=args.admin_key)
    found = recent_rows(routes, list(recent.get("rows", [])))
    return {
        "window": recent.get("window", args.window),
        "version": described.get("version"),
        "last_reload_error": described.get("last_reload_error"),
        "limits": read_limits(args.url, admin_key=args.admin_key),
        "rows": [
            {"route": r.route, "target": r.target, "weight": r.weight,
             "requests": r.window.requests, "errors": r.window.errors,
             "error_rate": r.window.error_rate, "p50": r.p50, "p99": r.window.p99}
            for r in found
        ],
        "_rows": found,
    }  # fmt: skip


def shown(look: dict[str, Any], output: str) -> str:
    if output == "json":
        return json.dumps({k: v for k, v in look.items() if k != "_rows"}, indent=2)
    lines = [render(look["_rows"])]
    refused = look.get("last_reload_error")
    if refused:
        lines.append(f"warning: the gateway refused the file on disk at its last reload: {refused}")
    limits = render_limits(look.get("limits") or {})
    if limits:  # only when some target has a limit or fleet-wide state
        lines.append(f"\n{limits}")
    return "\n".join(lines)


def run_status(args: argparse.Namespace) -> int:
    previous = None
    for _ in range(args.count if args.watch else 1):
        try:
            look = snapshot(args)
        except MetricsUnavailable as exc:
            print(f"gateway status: {exc}", file=sys.stderr)
            return 1
        text = shown(look, args.output)
        if text != previous:  # --watch prints nothing when nothing changed
            stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            print(f"{stamp}  last {look['window']}\n{text}" if args.watch else text, flush=True)
        previous = text
        if args.watch:
            time.sleep(args.every)
    return 0


def add_status_verb(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verb = verbs.add_parser(
        "status", help="a running gateway's weights, requests, 5xx, p50 and p99 over a window"
    )
    verb.add_argument("url", metavar="URL", help="the gateway's base URL")
    verb.add_argument("--window", default="5m", help="the recent past shown, up to 1h (5m)")
    verb.add_argument("--watch", action="store_true", help="look again every --every seconds")
    verb.add_argument("--every", type=float, default=2.0, help="seconds between looks (2)")
    verb.add_argument("--count", type=int, default=1_000_000, help=argparse.SUPPRESS)
    verb.add_argument("-o", "--output", choices=("text", "json"), default="text")
    add_admin_key(verb)
    verb.set_defaults(run=run_status)
