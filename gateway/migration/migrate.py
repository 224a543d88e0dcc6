"""`gateway migrate FILE ROUTE --to STAGE`: a guarded move of one route between stages.

Exit 0: moved (or already there); 1: the move cannot be made (bad arguments, no such route,
an unreadable or invalid table, a move back without --reason); 3: a guard refused it, naming
the guard, its numbers and what is missing (`--force` moves anyway, and the ledger says so).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from gateway.cli.credentials import add_admin_key
from gateway.config.load import load_text
from gateway.config.model import STAGES, ConfigError, Route, Stage
from gateway.config.stages import candidate_of, legacy_of
from gateway.config.store import store_for
from gateway.errors import CommandError
from gateway.migration.entries import Move
from gateway.migration.guards import Evidence, Verdict, guards_for, is_back, judge
from gateway.migration.ledger import ledger_for
from gateway.migration.record import find, record_move, stage_in
from gateway.migration.reshape import Shape, reshaped

EXIT_MOVED, EXIT_ERROR, EXIT_REFUSED = 0, 1, 3


class MoveError(CommandError):
    """The move cannot be made as asked; nothing was written."""


def run_migrate(args: argparse.Namespace) -> int:
    try:
        return _migrate(args)
    except (CommandError, ConfigError) as exc:
        print(f"gateway migrate: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _migrate(args: argparse.Namespace) -> int:
    to: Stage = args.to
    store = store_for(args.file)
    stored = store.read()
    config = load_text(stored.text, store.description)
    route = find(config, args.route)
    if route is None:
        names = ", ".join(r.name for r in config.routes)
        raise MoveError(f"no route {args.route!r}; routes: {names}")
    legacy = legacy_of(route, config.legacy, config.targets)
    candidate = args.candidate or candidate_of(route, legacy)
    if candidate is None or candidate == legacy or candidate not in config.targets:
        raise MoveError(f"route {route.name!r}: name the new service with --candidate TARGET")
    if to == "retired" and config.legacy is None and "legacy" not in config.targets:
        raise MoveError("name the legacy target with a top-level `legacy: NAME` before retiring")
    old: Stage = stage_in(config, route)  # type: ignore[assignment]
    if is_back(old, to) and old != to and not args.reason:
        raise MoveError(f"{route.name}: {old} -> {to} is a move back; say why with --reason")
    shape = Shape(route.name, to, legacy, candidate)
    verdicts = _judged(args, route, old, shape)
    refused = [v for v in verdicts if not v.allowed]
    for verdict in verdicts:
        print(f"{route.name}: {verdict}")
    if refused and not args.force:
        print(f"{route.name}: {old} -> {to} refused; nothing changed (--force to move anyway)")
        return EXIT_REFUSED
    text, after = reshaped(stored.text, store.description, shape)
    store.write(text, stored)
    evidence: dict[str, Any] = {v.guard: v.numbers for v in verdicts}
    if refused:
        evidence["forced_past"] = [str(v) for v in refused]
    move = Move(route.name, "migrate", args.by, args.reason or "", evidence, bool(refused))
    record_move(args.file, config, after, move)
    moved = find(after, route.name)
    split = ", ".join(f"{t} {w:g}%" for t, w in moved.split) if moved else ""
    forced = " (forced past a guard, recorded in the ledger)" if refused else ""
    print(f"{route.name}: {old} -> {to}{forced}: {split}")
    return EXIT_MOVED


def _judged(args: argparse.Namespace, route: Route, old: Stage, shape: Shape) -> list[Verdict]:
    to = shape.to
    if is_back(old, to):
        return []
    since = None
    if to == "retired":
        lines = [e for e in ledger_for(args.file).entries() if e.get("route") == route.name]
        since = next((e.get("time") for e in reversed(lines) if e.get("to") == "new"), None)
    evidence = Evidence(args.metrics, args.admin_key, args.window, time.time(), since)
    return [
        judge(move, route, shape.legacy, shape.candidate, evidence) for move in guards_for(old, to)
    ]


def add_migrate_verb(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verb = verbs.add_parser(
        "migrate", help="move a route between stages, guarded by live evidence (exit 3: refused)"
    )
    verb.add_argument("file", metavar="FILE", help="a path, s3://bucket/key or ssm:/name")
    verb.add_argument("route", metavar="ROUTE")
    verb.add_argument(
        "--to", required=True, choices=STAGES, metavar="STAGE", help=" | ".join(STAGES)
    )
    verb.add_argument("--reason", default=None, help="why (required for a move back)")
    verb.add_argument(
        "--metrics",
        default=None,
        metavar="URL|cloudwatch:NS",
        help="where the guards read parity and metrics",
    )
    verb.add_argument("--force", action="store_true", help="move past a refusing guard")
    verb.add_argument("--by", default=None, help="who moves it (default: git user, $USER)")
    verb.add_argument(
        "--candidate",
        default=None,
        metavar="TARGET",
        help="the new service (default: the shadow's or the split's other)",
    )
    verb.add_argument(
        "--window",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="window canary -> new is judged over (default 1h)",
    )
    add_admin_key(verb)
    verb.set_defaults(run=run_migrate)
