"""Writing a move into the ledger: by `migrate`, by `shift`/`promote`/`rollback`, by the
rollout controller (each step, each rollback)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from gateway.config.load import load_config
from gateway.config.model import ConfigError, GatewayConfig, Route
from gateway.config.stages import legacy_of, stage_of
from gateway.migration.entries import Move, entry
from gateway.migration.ledger import LedgerError, ledger_for

Run = Callable[[argparse.Namespace], int]


def find(config: GatewayConfig, name: str) -> Route | None:
    return next((route for route in config.routes if route.name == name), None)


def stage_in(config: GatewayConfig, route: Route) -> str:
    return stage_of(route, legacy_of(route, config.legacy, config.targets))


def record_move(
    spec: str, before: GatewayConfig, after: GatewayConfig, move: Move
) -> dict[str, Any] | None:
    """Append MOVE of its route from BEFORE to AFTER to the ledger beside SPEC."""
    old, new = find(before, move.route), find(after, move.route)
    if old is None or new is None:
        return None
    line = entry(move, stage_in(before, old), stage_in(after, new), after.version)
    line["split"] = dict(new.split)
    line["legacy"] = legacy_of(new, after.legacy, after.targets)
    ledger_for(spec).append(line)
    return line


def recorded(run: Run, kind: str) -> Run:
    """A file-editing verb (`shift`, `promote`, `rollback`) that also writes its ledger line."""

    def wrapped(args: argparse.Namespace) -> int:
        before = _loaded(args.file)
        code = run(args)
        after = _loaded(args.file) if code == 0 else None
        if before is None or after is None or after.version == before.version:
            return code
        try:
            record_move(args.file, before, after, Move(args.route, kind, getattr(args, "by", None)))
        except LedgerError as exc:
            print(f"gateway {kind}: the table is edited, but not recorded: {exc}", file=sys.stderr)
            return 1
        return code

    return wrapped


def _loaded(path: str) -> GatewayConfig | None:
    try:
        return load_config(path)
    except ConfigError:
        return None


def add_by(verb: argparse.ArgumentParser) -> None:
    verb.add_argument("--by", default=None, help="who moves it, for the migration ledger")
