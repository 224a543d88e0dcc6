"""The one edit engine for routes.yaml: a route's split, and its rollout state, in place.

`edit_text(text, route, change)` is the edit on text; `apply(location, route, change)` reads
the table from its store (a file, S3 or SSM, `gateway.config.store`), edits it and writes it
back, refused if the table changed in between. `shift`, `promote`, `rollback` and the rollout
controller all go through them.

An edit checks the table, computes the new split in thousandths of a percent, applies it (and
the rollout state, when the change carries one) to the ruamel.yaml round-trip tree, and
carries over to the original text only the lines ruamel renders differently
(`yaml_text.transplant`): comments, quoting and layout elsewhere stay byte for byte. A last
guard checks that the result means the old table with just that change. On any problem
nothing is written and `EditError` says why.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml.comments import CommentedMap

from gateway.cli.diff import percent_text, run_diff
from gateway.config.load import load_text
from gateway.config.model import ConfigError, GatewayConfig, RolloutState, Route
from gateway.config.store import ConfigStore, store_for
from gateway.config.stored import Unreadable
from gateway.errors import CommandError
from gateway.rollouts import weights
from gateway.rollouts.state_block import write_state
from gateway.rollouts.weights import Split, Weights
from gateway.rollouts.yaml_text import (
    Refused,
    dump,
    prefers_flow,
    round_trip_yaml,
    transplant,
    write_split,
)

Plan = Callable[[GatewayConfig, Route], Weights]


class EditError(CommandError):
    """An edit was refused; the table is unchanged."""

    def __init__(self, path: str, route: str, reason: str) -> None:
        self.path, self.route, self.reason = path, route, reason
        super().__init__(f"{path}: route {route!r}: {reason}" if route else f"{path}: {reason}")


@dataclass(frozen=True, slots=True)
class Change:
    """What an edit does to one route: a new split (by PLAN; None keeps it), its rollout
    state if given, and any other edit of the route's YAML node (NODE, for the next verbs),
    with what that edit means (MEANS: the old route -> the new one) for the last guard; a
    NODE edit without MEANS is refused unless it changes nothing the table means."""

    plan: Plan | None = None
    state: RolloutState | None = None
    node: Callable[[CommentedMap], None] | None = None
    means: Callable[[Route], Route] | None = None

    def with_state(self, state: RolloutState) -> Change:
        return dataclasses.replace(self, state=state)


def shift_to(target: str, percent: float) -> Change:
    """TARGET to PERCENT of the route; the others keep their proportions (`gateway shift`)."""
    return Change(lambda config, route: weights.shifted(config, route, target, percent))


def all_to(target: str) -> Change:
    """All of the route to TARGET, the others listed at 0 (`gateway promote`)."""
    return Change(lambda config, route: weights.all_to(config, route, target))


def to_baseline() -> Change:
    """All of the route back to its `baseline:`, else its first target (`gateway rollback`)."""
    return Change(
        lambda config, route: weights.all_to(config, route, route.baseline or route.targets[0])
    )


@dataclass(frozen=True, slots=True)
class EditResult:
    path: str
    route: str
    before: Split
    after: Split
    summary: str  # "orders: legacy 90% -> 75%, orders-v2 10% -> 25%"
    text: str = ""  # the edited table (the same text when nothing changed)
    changed: bool = False

    def __str__(self) -> str:
        return self.summary


def shift(path: str | Path, route: str, target: str, percent: float) -> EditResult:
    """Set TARGET to PERCENT of ROUTE in the table at PATH; the others keep their proportions.

    With one other target, it gets the rest. With several, all at 0%, there is no proportion
    to keep and the edit is refused: shift one of them instead.
    """
    return apply(path, route, shift_to(target, percent))


def promote(path: str | Path, route: str, target: str) -> EditResult:
    """TARGET takes all of ROUTE; the others stay listed at 0 so a rollback is one edit."""
    return apply(path, route, all_to(target))


def rollback(path: str | Path, route: str) -> EditResult:
    """All of ROUTE back to its `baseline:` target, or else the first target of its split."""
    return apply(path, route, to_baseline())


def apply(
    location: str | Path, route: str, change: Change, store: ConfigStore | None = None
) -> EditResult:
    """Edit ROUTE of the table at LOCATION (a path, s3://bucket/key or ssm:/name) and write it
    back; `ConcurrentEdit` (a `StoreError`) when it changed since it was read."""
    store = store or store_for(str(location))
    try:
        stored = store.read()
    except Unreadable as exc:
        raise EditError(store.description, route, exc.problems[0].message) from exc
    result = edit(stored.text, route, change, store.description)
    if result.changed:
        store.write(result.text, stored)
    return result


def edit_text(text: str, route: str, change: Change, source: str = "routes.yaml") -> str:
    """TEXT with ROUTE edited by CHANGE; `EditError` when it cannot be."""
    return edit(text, route, change, source).text


def edit(text: str, route: str, change: Change, source: str = "routes.yaml") -> EditResult:
    """The edit of ROUTE in TEXT (read from SOURCE), with what changed."""
    newline = "\r\n" if "\r\n" in text else "\n"
    try:
        result = _edit(text.replace("\r\n", "\n"), source, route, change)
    except Refused as exc:
        raise EditError(source, route, str(exc)) from exc
    return dataclasses.replace(result, text=result.text.replace("\n", newline))


def checked(text: str, source: str) -> GatewayConfig:
    """The table in TEXT, or `EditError` saying why it cannot be edited."""
    try:
        return _checked(text, source, "the route table is not valid as it is")
    except Refused as exc:
        raise EditError(source, "", str(exc)) from exc


def _edit(text: str, source: str, name: str, change: Change) -> EditResult:
    config = _checked(text, source, "refused: the file is not a valid route table as it is")
    route = _find_route(config, name)
    yaml = round_trip_yaml(text)
    document = yaml.load(text)
    node = next(spec for spec in document["routes"] if spec.get("name") == name)
    new = change.plan(config, route) if change.plan else weights.as_weights(route.split)
    untouched = dump(yaml, document)
    write_split(node, weights.as_values(new), flow=prefers_flow(document))
    if change.state is not None:
        if "rollout" not in node:
            raise Refused("refused: the route has no rollout: block to record the state in")
        write_state(node["rollout"], change.state)
    if change.node is not None:
        change.node(node)
    edited = transplant(text, untouched, dump(yaml, document))
    after = weights.as_split(new)
    summary = _summary(name, route.split, after)
    if edited == text:
        return EditResult(source, name, route.split, after, summary, text, False)
    changed = _checked(edited, source, "refused: the edit would make the file invalid")
    _check_only(config, changed, name, after, change)
    return EditResult(source, name, route.split, after, summary, edited, True)


def _find_route(config: GatewayConfig, name: str) -> Route:
    for route in config.routes:
        if route.name == name:
            return route
    names = [route.name for route in config.routes]
    guess = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    raise Refused(f"no such route{hint}; routes: {', '.join(names)}")


def _checked(text: str, source: str, why: str) -> GatewayConfig:
    try:
        return load_text(text, source)
    except ConfigError as exc:
        raise Refused(f"{why}\n{exc}") from exc


def _check_only(
    old: GatewayConfig, new: GatewayConfig, name: str, split: Split, change: Change
) -> None:
    # A last guard on the text surgery: the result must mean the old table with one new split
    # (and, for the controller, one new rollout state; for a node edit, what it means).
    state = change.state

    def expected(route: Route) -> Route:
        if route.name == name:
            rollout = route.rollout
            if state is not None and rollout is not None:
                rollout = dataclasses.replace(rollout, state=state)
            route = dataclasses.replace(route, split=split, rollout=rollout)
            route = change.means(route) if change.means is not None else route
        return dataclasses.replace(route, line=0)

    wanted = [expected(route) for route in old.routes]
    found = [dataclasses.replace(route, line=0) for route in new.routes]
    if found != wanted or dict(new.targets) != dict(old.targets):
        what = "the split" if state is None else "the split and its state"
        what = "what the edit says it means" if change.means is not None else what
        raise Refused(f"refused: the edit would change more than {what} (please report this)")


def _summary(route: str, before: Split, after: Split) -> str:
    was = dict(before)
    changes = [
        f"{name} {percent_text(was.get(name, 0.0))} -> {percent_text(weight)}"
        for name, weight in after
        if was.get(name, 0.0) != weight
    ]
    if changes:
        return f"{route}: {', '.join(changes)}"
    return f"{route}: no change ({', '.join(f'{n} {percent_text(w)}' for n, w in after)})"


def parse_assignment(text: str) -> tuple[str, float]:
    """'orders-v2=25' (or '25%') -> ('orders-v2', 25.0); ValueError for anything else."""
    target, sep, share = text.partition("=")
    try:
        if not sep or not target:
            raise ValueError(text)
        return target, float(share.removesuffix("%"))
    except ValueError:
        raise ValueError(f"{text!r}: write TARGET=PERCENT, e.g. orders-v2=25") from None


def run_shift(args: argparse.Namespace) -> int:
    try:
        target, share = parse_assignment(args.assignment)
    except ValueError as exc:
        print(f"gateway shift: {exc}", file=sys.stderr)
        return 2
    return _report(lambda: shift(args.file, args.route, target, share))


def run_promote(args: argparse.Namespace) -> int:
    return _report(lambda: promote(args.file, args.route, args.target))


def run_rollback(args: argparse.Namespace) -> int:
    return _report(lambda: rollback(args.file, args.route))


def _report(edit: Callable[[], EditResult]) -> int:
    try:
        result = edit()
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(result.summary)
    return 0


def add_edit_verbs(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register shift, promote, rollback and diff; each sets `run(args) -> exit code`."""
    verb = verbs.add_parser("shift", help="set a target's share of a route; the others rescale")
    verb.add_argument("file", metavar="FILE")
    verb.add_argument("route", metavar="ROUTE")
    verb.add_argument("assignment", metavar="TARGET=PCT")
    verb.set_defaults(run=run_shift)
    verb = verbs.add_parser("promote", help="send all of a route to one target, the others at 0")
    verb.add_argument("file", metavar="FILE")
    verb.add_argument("route", metavar="ROUTE")
    verb.add_argument("target", metavar="TARGET")
    verb.set_defaults(run=run_promote)
    verb = verbs.add_parser("rollback", help="send all of a route back to its baseline target")
    verb.add_argument("file", metavar="FILE")
    verb.add_argument("route", metavar="ROUTE")
    verb.set_defaults(run=run_rollback)
    verb = verbs.add_parser("diff", help="where traffic moves between two route tables")
    verb.add_argument("old", metavar="OLD")
    verb.add_argument("new", metavar="NEW")
    verb.add_argument(
        "--exit-code", action="store_true", help="exit 1 when traffic moves (2: invalid file)"
    )
    verb.set_defaults(run=run_diff)
