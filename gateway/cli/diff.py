"""What changes between two route tables: traffic moves first, then routes and targets."""

from __future__ import annotations

import argparse
import json
import re
import sys
from fractions import Fraction

from ruamel.yaml import YAML

from gateway.config.load import load_config
from gateway.config.model import ConfigError, GatewayConfig, Route
from gateway.routing import RouteMatch, RouteTable

Shares = dict[str, Fraction]


def percent_text(weight: float | Fraction) -> str:
    return f"{float(weight):g}%"


def diff(old: GatewayConfig, new: GatewayConfig) -> list[str]:
    """One line per change; the first lines say where traffic moves ("no traffic changes")."""
    return report(old, new)[0]


def report(old: GatewayConfig, new: GatewayConfig) -> tuple[list[str], bool]:
    """(the lines, whether any traffic moves)."""
    before = {route.name: route for route in old.routes}
    after = {route.name: route for route in new.routes}
    kept = [(before[route.name], route) for route in new.routes if route.name in before]
    old_words, new_words = _yaml_words(old), _yaml_words(new)
    traffic = [line for was, now in kept if (line := _traffic(was, now))]
    traffic += [
        f"{was.name}: takes other requests ({key}: {old_words.field(was.name, key)} -> "
        f"{new_words.field(now.name, key)})"
        for was, now in kept
        for key in MATCH_KEYS
        if old_words.field(was.name, key) != new_words.field(now.name, key)
    ]
    old_table, new_table = RouteTable(old), RouteTable(new)
    traffic += [_takes_over(route, old_table) for route in new.routes if route.name not in before]
    traffic += [_hands_over(route, new_table) for route in old.routes if route.name not in after]
    lines = traffic or ["no traffic changes"]
    lines += [f"added route {r.name}: {_describe(r)}" for r in new.routes if r.name not in before]
    lines += [f"removed route {r.name} ({r.path})" for r in old.routes if r.name not in after]
    for was, now in kept:
        lines += [
            f"{now.name}: {key}: {was_text} -> {now_text}"
            for key, was_text, now_text in _changed(
                old_words.route(was.name), new_words.route(now.name)
            )
            if key not in MATCH_KEYS and key not in TRAFFIC_KEYS
        ]
    return lines + _target_changes(old_words, new_words), bool(traffic)


# Keys whose change moves traffic, said in the traffic lines rather than as a field.
MATCH_KEYS = ("path", "methods", "headers")
TRAFFIC_KEYS = ("name", "split", "target")
NOT_SET = "(not set)"


def _owner(table: RouteTable, route: Route) -> RouteMatch | None:
    """The route of `table` that takes the requests `route` is written for."""
    method = sorted(route.methods)[0] if route.methods else "GET"
    return table.match(method, route.path, dict(route.headers))


def _takes_over(route: Route, old: RouteTable) -> str:
    was = _owner(old, route)
    source = "no route (404)" if was is None else f"{was.route.name} ({_split_text(was.route)})"
    return f"{route.name} (added): {route.path} moves from {source} to {_split_text(route)}"


def _hands_over(route: Route, new: RouteTable) -> str:
    now = _owner(new, route)
    where = "no route (404)" if now is None else f"{now.route.name} ({_split_text(now.route)})"
    return f"{route.name} (removed): {route.path} moves from {_split_text(route)} to {where}"


def _split_text(route: Route) -> str:
    return ", ".join(f"{name} {percent_text(weight)}" for name, weight in route.split)


class _Words:
    """The tables as written: each field in the words of routes.yaml."""

    def __init__(self, data: object) -> None:
        data = data if isinstance(data, dict) else {}
        routes = data.get("routes") or []
        self.routes = {
            str(r.get("name")): r for r in routes if isinstance(r, dict) and r.get("name")
        }
        targets = data.get("targets") or {}
        self.targets: dict[str, object] = targets if isinstance(targets, dict) else {}

    def route(self, name: str) -> dict[str, object]:
        found = self.routes.get(name)
        return found if isinstance(found, dict) else {}

    def field(self, name: str, key: str) -> str:
        route = self.route(name)
        return yaml_words(route[key]) if key in route else NOT_SET


def _yaml_words(config: GatewayConfig) -> _Words:
    return _Words(YAML(typ="safe", pure=True).load(config.raw) if config.raw else None)


def _changed(old: object, new: object) -> list[tuple[str, str, str]]:
    was = old if isinstance(old, dict) else {}
    now = new if isinstance(new, dict) else {}
    keys = list(dict.fromkeys([*was, *now]))
    return [
        (str(key), _word_or_unset(was, key), _word_or_unset(now, key))
        for key in keys
        if _word_or_unset(was, key) != _word_or_unset(now, key)
    ]


def _word_or_unset(mapping: dict[object, object], key: object) -> str:
    return yaml_words(mapping[key]) if key in mapping else NOT_SET


_PLAIN_SCALAR = re.compile(r"^[A-Za-z0-9_./-][A-Za-z0-9_./:@+=%-]*$")
_YAML_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"})


def yaml_words(value: object) -> str:
    """A value as YAML flow text: `10s`, `{legacy: 90, orders-v2: 10}`, `[GET, POST]`."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)}: {yaml_words(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_words(item) for item in value) + "]"
    text = str(value)
    if _PLAIN_SCALAR.match(text) and text.lower() not in _YAML_WORDS and not _numeric(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _key(key: object) -> str:
    # Keys as routes.yaml writes them: `on: [503]` (YAML 1.2 reads `on` as text).
    return str(key) if _PLAIN_SCALAR.match(str(key)) else yaml_words(key)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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


def _target_changes(old: _Words, new: _Words) -> list[str]:
    lines = [
        f"added target {name}: {yaml_words(t)}"
        for name, t in new.targets.items()
        if name not in old.targets
    ]
    lines += [f"removed target {name}" for name in old.targets if name not in new.targets]
    for name, target in new.targets.items():
        if name in old.targets:
            lines += [
                f"target {name}: {key}: {was} -> {now}"
                for key, was, now in _changed(old.targets[name], target)
            ]
    return lines


def run_diff(args: argparse.Namespace) -> int:
    """`gateway diff OLD NEW`: print the changes, exit 0; 1 when either file is invalid.

    With `--exit-code` (for CI): 1 when traffic moves, 2 when either file is invalid."""
    try:
        old, new = load_config(args.old), load_config(args.new)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2 if args.exit_code else 1
    lines, moves = report(old, new)
    for line in lines:
        print(line)
    return 1 if moves and args.exit_code else 0
