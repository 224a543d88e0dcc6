"""Edit a routes.yaml by command during a canary rollout: shift, promote, rollback.

An edit checks the file, computes the new split in thousandths of a percent, applies it to the
ruamel.yaml round-trip tree, checks the result and writes it atomically. Only the lines of the
edited split change: ruamel's rendering of the untouched tree is compared with its rendering of
the edited one and only the lines that differ are carried over to the original text, so
comments, quoting and layout elsewhere stay byte for byte even where ruamel would render them
differently. On any problem the file is left as it was and `EditError` says why.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ruamel.yaml.comments import CommentedMap

from gateway.cli.diff import percent_text, run_diff
from gateway.config.load import load_text
from gateway.config.model import ConfigError, GatewayConfig, Route
from gateway.errors import CommandError
from gateway.rollouts.yaml_text import (
    Refused,
    dump,
    prefers_flow,
    round_trip_yaml,
    transplant,
    write_atomically,
    write_split,
)

Split = tuple[tuple[str, float], ...]
Weights = list[tuple[str, int]]  # in thousandths of a percent
Plan = Callable[[GatewayConfig, Route, CommentedMap], Weights]
SCALE = 1000  # weights keep at most three decimals
WHOLE = 100 * SCALE

# Under the names gateway.rollouts.rollout_edit and gateway.rollouts.store reach for
# through `edits.`.


class EditError(CommandError):
    """An edit was refused; the file is unchanged."""

    def __init__(self, path: str, route: str, reason: str) -> None:
        self.path, self.route, self.reason = path, route, reason
        super().__init__(f"{path}: route {route!r}: {reason}")


@dataclass(frozen=True, slots=True)
class EditResult:
    path: str
    route: str
    before: Split
    after: Split
    summary: str  # "orders: legacy 90% -> 75%, orders-v2 10% -> 25%"

    def __str__(self) -> str:
        return self.summary


def shift(path: str | Path, route: str, target: str, percent: float) -> EditResult:
    """Set TARGET to PERCENT of ROUTE; the other targets keep their proportions.

    With one other target, it gets the rest. With several, all at 0%, there is no proportion
    to keep and the edit is refused: shift one of them instead.
    """
    return _edit(path, route, lambda config, found, _: _shifted(config, found, target, percent))


def promote(path: str | Path, route: str, target: str) -> EditResult:
    """TARGET takes all of ROUTE; the others stay listed at 0 so a rollback is one edit."""
    return _edit(path, route, lambda config, found, _: _all_to(config, found, target))


def rollback(path: str | Path, route: str) -> EditResult:
    """All of ROUTE back to its `baseline:` target, or else the first target of its split."""
    return _edit(path, route, lambda config, found, node: _all_to(config, found, _baseline(node)))


def _shifted(config: GatewayConfig, route: Route, target: str, share: float) -> Weights:
    _check_target(config, target)
    wanted = _thousandths(share)
    others = [(name, Fraction(repr(weight)) * SCALE) for name, weight in route.split]
    others = [(name, weight) for name, weight in others if name != target]
    rest = WHOLE - wanted
    total = sum((weight for _, weight in others), Fraction(0))
    if rest and not others:
        raise Refused(f"{target} is its only target; shift another target in instead")
    if rest and len(others) > 1 and not total:
        names = ", ".join(name for name, _ in others)
        raise Refused(f"{names} all have 0%, so there is no proportion to keep: shift one of them")
    if len(others) == 1:
        shares = {others[0][0]: rest}
    else:
        shares = _apportion({name: weight * rest / (total or 1) for name, weight in others}, rest)
    return [(name, wanted if name == target else shares[name]) for name in _names(route, target)]


def _all_to(config: GatewayConfig, route: Route, target: str) -> Weights:
    _check_target(config, target)
    return [(name, WHOLE if name == target else 0) for name in _names(route, target)]


def _names(route: Route, target: str) -> list[str]:
    return [*route.targets, *([] if target in route.targets else [target])]


def _baseline(node: CommentedMap) -> str:
    baseline = node.get("baseline")
    if baseline is None:
        first = node["split"] if "split" in node else {node["target"]: 100}
        return str(next(iter(first)))
    if not isinstance(baseline, str):
        raise Refused(f"baseline {baseline!r} is not a target name")
    return baseline


def _thousandths(share: float) -> int:
    if not math.isfinite(share) or not 0 <= share <= 100:
        raise Refused(f"{share:g}% is not a percentage 0..100")
    exact = Fraction(repr(share)) * SCALE
    if exact.denominator != 1:
        raise Refused(f"{share:g}%: at most three decimals")
    return int(exact)


def _apportion(exact: dict[str, Fraction], total: int) -> dict[str, int]:
    """Whole thousandths summing to `total`: the largest remainders round up."""
    shares = {name: math.floor(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: exact[name] - shares[name], reverse=True)
    for name in by_remainder[: total - sum(shares.values())]:
        shares[name] += 1
    return shares


def _check_target(config: GatewayConfig, target: str) -> None:
    if target not in config.targets:
        guess = difflib.get_close_matches(target, list(config.targets), n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        raise Refused(f"unknown target {target!r}{hint}; declared: {', '.join(config.targets)}")


def _find_route(config: GatewayConfig, name: str) -> Route:
    for route in config.routes:
        if route.name == name:
            return route
    names = [route.name for route in config.routes]
    guess = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    raise Refused(f"no such route{hint}; routes: {', '.join(names)}")


def _edit(path: str | Path, route: str, plan: Plan) -> EditResult:
    try:
        return _apply(Path(path), route, plan)
    except Refused as exc:
        raise EditError(str(path), route, str(exc)) from exc


def _apply(path: Path, name: str, plan: Plan) -> EditResult:
    original, text, newline = _read(path)
    config = _checked(text, str(path), "refused: the file is not a valid route table as it is")
    route = _find_route(config, name)
    yaml = round_trip_yaml(text)
    document = yaml.load(text)
    node = next(spec for spec in document["routes"] if spec.get("name") == name)
    weights = plan(config, route, node)
    untouched = dump(yaml, document)
    _write_split(node, weights, flow=prefers_flow(document))
    edited = transplant(text, untouched, dump(yaml, document))
    after = tuple((target, share / SCALE) for target, share in weights)
    result = EditResult(str(path), name, route.split, after, _summary(name, route.split, after))
    if edited != text:
        changed = _checked(edited, str(path), "refused: the edit would make the file invalid")
        _check_only_split_changed(config, changed, name, after)
        write_atomically(path, original, edited.replace("\n", newline).encode("utf-8"))
    return result


def _read(path: Path) -> tuple[bytes, str, str]:
    """The file's bytes, its text with '\\n' line ends, and the line end it uses."""
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
        return data, text.replace("\r\n", "\n"), "\r\n" if "\r\n" in text else "\n"
    except OSError as exc:
        raise Refused(f"cannot read the file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise Refused(f"the file is not UTF-8 text: {exc}") from exc


def _checked(text: str, source: str, why: str) -> GatewayConfig:
    try:
        return load_text(text, source)
    except ConfigError as exc:
        raise Refused(f"{why}\n{exc}") from exc


def _check_only_split_changed(
    old: GatewayConfig, new: GatewayConfig, name: str, split: Split
) -> None:
    # A last guard on the text surgery: the result must mean the old table with one new split.
    def unplaced(route: Route) -> Route:
        return dataclasses.replace(route, line=0)

    expected = [
        unplaced(dataclasses.replace(r, split=split) if r.name == name else r) for r in old.routes
    ]
    if [unplaced(r) for r in new.routes] != expected or dict(new.targets) != dict(old.targets):
        raise Refused("refused: the edit would change more than the split (please report this)")


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


def _write_split(node: CommentedMap, weights: Weights, *, flow: bool) -> None:
    values = [
        (name, share // SCALE if share % SCALE == 0 else share / SCALE) for name, share in weights
    ]
    write_split(node, values, flow=flow)


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
    except EditError as exc:
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
