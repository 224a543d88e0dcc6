"""What changes between two route tables: traffic moves first, then routes and targets."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import fields
from fractions import Fraction

from gateway.config import (
    ConfigError,
    GatewayConfig,
    HttpTarget,
    LambdaTarget,
    Route,
    Target,
    load_config,
)

Shares = dict[str, Fraction]


def percent_text(weight: float | Fraction) -> str:
    return f"{float(weight):g}%"


def diff(old: GatewayConfig, new: GatewayConfig) -> list[str]:
    """One line per change; the first lines say where traffic moves ("no traffic changes")."""
    before = {route.name: route for route in old.routes}
    after = {route.name: route for route in new.routes}
    kept = [(before[route.name], route) for route in new.routes if route.name in before]
    traffic = [line for was, now in kept if (line := _traffic(was, now))]
    lines = traffic or ["no traffic changes"]
    lines += [f"added route {r.name}: {_describe(r)}" for r in new.routes if r.name not in before]
    lines += [f"removed route {r.name} ({r.path})" for r in old.routes if r.name not in after]
    for was, now in kept:
        lines += _route_changes(was, now)
    return lines + _target_changes(old.targets, new.targets)


def _shares(route: Route) -> Shares:
    # Through the decimal text: 33.333 stays 33.333 rather than its binary neighbour.
    return {name: Fraction(repr(weight)) for name, weight in route.split}


def _traffic(old: Route, new: Route) -> str | None:
    before, after = _shares(old), _shares(new)
    names = list(dict.fromkeys([*before, *after]))
    delta = {name: after.get(name, Fraction(0)) - before.get(name, Fraction(0)) for name in names}
    if not any(delta.values()):
        return None
    changes = ", ".join(
        f"{name} {percent_text(before.get(name, 0))} -> {percent_text(after.get(name, 0))}"
        for name in names
        if delta[name]
    )
    return f"{new.name}: {', '.join(_moves(delta))} ({changes})"


def _moves(delta: Shares) -> list[str]:
    """Pair losers with gainers greedily, biggest first (ties in split order)."""
    losers = sorted((name for name, d in delta.items() if d < 0), key=lambda name: delta[name])
    gainers = sorted((name for name, d in delta.items() if d > 0), key=lambda name: -delta[name])
    left = {name: abs(change) for name, change in delta.items()}
    moves: list[str] = []
    for loser in losers:
        for gainer in gainers:
            amount = min(left[loser], left[gainer])
            if amount:
                moves.append(f"{percent_text(amount)} moves {loser} -> {gainer}")
                left[loser] -= amount
                left[gainer] -= amount
    return moves


def _describe(route: Route) -> str:
    split = ", ".join(f"{name} {percent_text(weight)}" for name, weight in route.split)
    return f"{route.path} -> {split}"


def _route_changes(old: Route, new: Route) -> list[str]:
    facets = (
        ("path", old.path, new.path),
        ("methods", _methods(old), _methods(new)),
        ("headers", _headers(old), _headers(new)),
        ("rewrite", old.rewrite or "none", new.rewrite or "none"),
        ("sticky", str(old.sticky or "none"), str(new.sticky or "none")),
    )
    return [f"{new.name}: {name} {was} -> {now}" for name, was, now in facets if was != now]


def _methods(route: Route) -> str:
    return "any" if route.methods is None else ", ".join(sorted(route.methods))


def _headers(route: Route) -> str:
    return ", ".join(f"{name}={value}" for name, value in route.headers) or "none"


def _target_changes(old: Mapping[str, Target], new: Mapping[str, Target]) -> list[str]:
    lines = [f"added target {name}: {_where(t)}" for name, t in new.items() if name not in old]
    lines += [f"removed target {name}" for name in old if name not in new]
    for name, target in new.items():
        if name in old and old[name] != target:
            lines += _target_fields(name, old[name], target)
    return lines


def _where(target: Target) -> str:
    match target:
        case HttpTarget(url=url):
            return url
        case LambdaTarget(function=function):
            return f"lambda {function}"


def _target_fields(name: str, old: Target, new: Target) -> list[str]:
    if type(old) is not type(new):
        return [f"target {name}: {_where(old)} -> {_where(new)}"]
    changed = [f.name for f in fields(old) if getattr(old, f.name) != getattr(new, f.name)]
    return [
        f"target {name}: {facet} {_show(getattr(old, facet))} -> {_show(getattr(new, facet))}"
        for facet in changed
    ]


def _show(value: object) -> str:
    if value is None:
        return "none"
    return f"{value:g}s" if isinstance(value, float) else str(value)


def run_diff(args: argparse.Namespace) -> int:
    """`gateway diff OLD NEW`: print the changes, exit 0; 1 when either file is invalid."""
    try:
        old, new = load_config(args.old), load_config(args.new)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    for line in diff(old, new):
        print(line)
    return 0
