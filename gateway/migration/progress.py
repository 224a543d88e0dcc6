"""How far the migration has come: routes by stage, the share of requests new services answer,
the history from the ledger (per day), and the routes still on the legacy by their traffic.

`gateway progress FILE [--metrics URL|cloudwatch:NS] [--window 24h] [-o json]`. With a
gateway's URL the requests are its counters since it started (a scrape cannot go back in
time); with CloudWatch they are the window's. The same numbers are metrics of the gateway:
`gateway_migration_routes{stage}` and `gateway_migration_new_share`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.cli.credentials import add_admin_key
from gateway.config.model import STAGES, ConfigError, CounterSnapshot, GatewayConfig, Route
from gateway.config.stages import legacy_of, stage_of
from gateway.config.store import store_for
from gateway.config.units import parse_duration
from gateway.errors import CommandError
from gateway.migration.ledger import ledger_for
from gateway.rollouts.metrics import (
    CloudWatchSource,
    PrometheusSource,
    metrics_source_for,
)

Requests = Mapping[tuple[str, str], float]  # (route, target) -> requests
ON_LEGACY = ("legacy", "shadow")  # the legacy answers every request of these


def stages(config: GatewayConfig) -> dict[str, str]:
    return {r.name: stage_of(r, _legacy(config, r)) for r in config.routes}


def _legacy(config: GatewayConfig, route: Route) -> str:
    return legacy_of(route, config.legacy, config.targets)


def new_share(config: GatewayConfig, requests: Requests) -> float | None:
    """The share of all requests answered by a target other than their route's legacy."""
    total = new = 0.0
    for route in config.routes:
        legacy = _legacy(config, route)
        for (name, target), count in requests.items():
            if name == route.name:
                total += count
                new += count if target != legacy else 0.0
    return new / total if total else None


def history(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per day of the ledger: the moves, the routes off the legacy at the day's end, and the
    mean share the legacy no longer takes of the routes the ledger knows."""
    where: dict[str, str] = {}
    off: dict[str, float] = {}
    days: dict[str, dict[str, Any]] = {}
    for line in entries:
        route, day = str(line.get("route", "")), str(line.get("time", ""))[:10]
        where[route] = str(line.get("to", ""))
        split = line.get("split")
        if isinstance(split, dict) and split:
            off[route] = 100.0 - float(split.get(str(line.get("legacy", "")), 0.0))
        days.setdefault(day, {"day": day, "moves": 0})["moves"] += 1
        days[day]["routes_off_legacy"] = sum(s not in ON_LEGACY for s in where.values())
        days[day]["traffic_off_legacy"] = round(sum(off.values()) / len(off), 2) if off else None
    return list(days.values())


def burn_down(config: GatewayConfig, requests: Requests) -> list[dict[str, Any]]:
    """The routes the legacy still answers, the busiest first."""
    at = stages(config)
    rows = [
        {"route": r.name, "stage": at[r.name],
         "requests": sum(c for (n, _), c in requests.items() if n == r.name)}
        for r in config.routes if at[r.name] in ON_LEGACY
    ]  # fmt: skip
    return sorted(rows, key=lambda row: (-row["requests"], row["route"]))


def report(
    config: GatewayConfig, requests: Requests, entries: Sequence[Mapping[str, Any]], window: str
) -> dict[str, Any]:
    at = stages(config)
    total = len(at) or 1
    counts = {stage: sum(s == stage for s in at.values()) for stage in STAGES}
    return {
        "source": config.source,
        "window": window,
        "stages": {s: {"routes": n, "share": round(n / total, 4)} for s, n in counts.items()},
        "routes": at,
        "new_share": new_share(config, requests),
        "history": history(entries),
        "burn_down": burn_down(config, requests),
    }


def metric_lines(config: GatewayConfig, counters: Mapping[tuple[str, str], CounterSnapshot]) -> str:
    """The migration as Prometheus text, appended to `/_gateway/metrics`."""
    at = stages(config)
    lines = [
        "# HELP gateway_migration_routes Routes of the table in use, by migration stage.",
        "# TYPE gateway_migration_routes gauge",
        *(f'gateway_migration_routes{{stage="{s}"}} {sum(v == s for v in at.values())}'
          for s in STAGES),
        "# HELP gateway_migration_new_share Share of requests answered by new services.",
        "# TYPE gateway_migration_new_share gauge",
        f"gateway_migration_new_share {new_share(config, _requests(counters)) or 0.0:g}",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _requests(counters: Mapping[tuple[str, str], CounterSnapshot]) -> dict[tuple[str, str], float]:
    return {key: counts.requests for key, counts in counters.items()}


def render_text(found: Mapping[str, Any]) -> str:
    lines = [f"{found['source']}: {len(found['routes'])} routes"]
    for stage, row in found["stages"].items():
        lines.append(f"  {stage:<8} {row['routes']:>4}  {row['share'] * 100:5.1f}%")
    share = found["new_share"]
    shown = "no requests" if share is None else f"{share * 100:.1f}%"
    over = found["window"] if found["window"].startswith("since") else f"over {found['window']}"
    lines.append(f"answered by new services {over}: {shown}")
    lines.append("history (ledger):")
    for day in found["history"]:
        traffic = day["traffic_off_legacy"]
        lines.append(
            f"  {day['day']}  {day['moves']:>3} moves  {day['routes_off_legacy']:>3} routes off"
            f" the legacy  {'-' if traffic is None else f'{traffic:g}%'} traffic off"
        )
    if not found["history"]:
        lines.append("  no move recorded yet")
    lines.append("still on the legacy (burn-down, busiest first):")
    for row in found["burn_down"]:
        lines.append(f"  {row['route']:<24} {row['stage']:<7} {int(row['requests']):>8} requests")
    return "\n".join(lines) + "\n"


def requests_over(config: GatewayConfig, spec: str | None, key: str | None, window: float) -> dict[
    tuple[str, str], float
]:  # fmt: skip
    if spec is None:
        return {}
    source = metrics_source_for(spec, key)
    if isinstance(source, PrometheusSource):
        return _requests(source.scrape())
    if not isinstance(source, CloudWatchSource):
        return {}
    now, found = time.time(), {}
    for route in config.routes:
        for target, seen in source.window(route.name, route.targets, now - window, now,
                                          p99=False).items():  # fmt: skip
            found[(route.name, target)] = seen.requests
    return found


def run_progress(args: argparse.Namespace) -> int:
    # cold start: the loader only for this verb
    from gateway.config.load import load_text

    try:
        stored = store_for(args.file).read()
        config = load_text(stored.text, args.file)
        window = _seconds(args.window)
        requests = requests_over(config, args.metrics, args.admin_key, window)
        entries = ledger_for(args.file).entries()
    except (CommandError, ConfigError, ValueError) as exc:
        print(f"gateway progress: {exc}", file=sys.stderr)
        return 1
    scraped = args.metrics is not None and not args.metrics.startswith("cloudwatch:")
    found = report(
        config, requests, entries, "since the gateway started" if scraped else args.window
    )
    out = json.dumps(found, indent=2) + "\n" if args.output == "json" else render_text(found)
    sys.stdout.write(out)
    return 0


def _seconds(text: str) -> float:
    """24h, 90m, 7d."""
    return float(text[:-1]) * 86400 if text.endswith("d") else parse_duration(text)


def add_progress_verb(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verb = verbs.add_parser("progress", help="how far the migration has come: stages, burn-down")
    verb.add_argument("file", metavar="FILE", help="a path, s3://bucket/key or ssm:/name")
    verb.add_argument("--metrics", default=None, metavar="URL|cloudwatch:NS")
    verb.add_argument("--window", default="24h", help="the requests counted (default 24h)")
    verb.add_argument("-o", "--output", choices=("text", "json"), default="text")
    add_admin_key(verb)
    verb.set_defaults(run=run_progress)
