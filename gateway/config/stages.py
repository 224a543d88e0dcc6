"""Where each route stands in the migration: its stage, read, derived and checked.

`stage: legacy | shadow | canary | new | retired` on a route says where it stands; absent, the
stage is derived from the route. Which target is "the legacy" of a route: its `baseline`, else
the top-level `legacy:` name, else a declared target named `legacy`, else the split's first.
The candidate is the target the route moves to: the `shadow:` block's target, else the split's
non-legacy target with the largest weight, else the rollout's target.

  legacy    all traffic to the legacy, no shadow
  shadow    the legacy answers everything; a `shadow:` block copies to the candidate
  canary    split between the legacy and the candidate, the candidate under 100%
  new       the candidate takes 100%; the legacy may remain as `fallback`
  retired   the legacy is neither a target of the route nor its fallback
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap

from gateway.config.check import Checker, key_line
from gateway.config.model import STAGES, MigrationSpec, Route, Stage, Target
from gateway.config.sections import Reader
from gateway.config.units import parse_duration

MIGRATION_KEYS = ("stage", "shadow", "min_parity", "min_compared", "retire_after")
DAY = 86400.0


def legacy_of(route: Route, legacy: str | None, targets: Mapping[str, Any]) -> str:
    """The route's legacy target (see the module's docstring for the order)."""
    if route.baseline is not None:
        return route.baseline
    if legacy is not None:
        return legacy
    if "legacy" in targets:
        return "legacy"
    return route.split[0][0] if route.split else ""


def candidate_of(route: Route, legacy: str) -> str | None:
    if route.migration.shadow_target is not None:
        return route.migration.shadow_target
    others = [(weight, name) for name, weight in route.split if name != legacy]
    if others:
        return max(others, key=lambda pair: (pair[0], -route.targets.index(pair[1])))[1]
    return route.rollout.target if route.rollout is not None else None


def derived_stage(route: Route, legacy: str) -> Stage:
    """The stage the route's shape says, whatever its `stage:` key claims."""
    weights = dict(route.split)
    share = weights.get(legacy, 0.0)
    if share >= 100.0:
        return "shadow" if route.migration.shadow_target is not None else "legacy"
    if share > 0.0:
        return "canary"
    if legacy in weights or route.fallback == legacy:
        return "new"
    return "retired"


def stage_of(route: Route, legacy: str) -> Stage:
    return route.migration.stage or derived_stage(route, legacy)


def disagreement(route: Route, legacy: str) -> str | None:  # noqa: PLR0911  (one per stage)
    """Why the route does not have the shape of its declared stage, or None."""
    stage = route.migration.stage
    if stage is None:
        return None
    weights = dict(route.split)
    share = weights.get(legacy, 0.0)
    shadow = route.migration.shadow_target
    if stage == "legacy" and (share < 100.0 or shadow is not None):
        return f"stage legacy: all traffic to the legacy {legacy!r}, no shadow"
    if stage == "shadow" and (share < 100.0 or shadow is None or shadow == legacy):
        return f"stage shadow: the legacy {legacy!r} answers all, a shadow: block to the candidate"
    if stage == "canary" and not 0.0 < share < 100.0:
        return f"stage canary: split between the legacy {legacy!r} and the candidate (under 100%)"
    if stage == "new" and share > 0.0:
        return f"stage new: the candidate takes 100% (the legacy {legacy!r} has {share:g}%)"
    if stage == "retired" and (legacy in weights or route.fallback == legacy):
        return f"stage retired: the legacy {legacy!r} is neither a target nor the fallback"
    return None


def read_migration(
    spec: CommentedMap, where: str, checker: Checker, targets: Mapping[str, Target]
) -> MigrationSpec:
    """The route's `stage`, its shadow's target, and the thresholds of its guarded moves."""
    stage = spec.get("stage")
    if stage is not None and stage not in STAGES:
        checker.problem(
            key_line(spec, "stage"), f"{where}.stage", f"{stage!r}: one of {', '.join(STAGES)}"
        )
        stage = None
    read = Reader(spec, where, checker)
    default = MigrationSpec()
    return MigrationSpec(
        stage=stage,
        shadow_target=_shadow_target(spec, where, checker, targets),
        min_parity=read.fraction("min_parity", default.min_parity),
        min_compared=read.integer("min_compared", default.min_compared),
        retire_after=_days(spec, "retire_after", where, checker, default.retire_after),
    )


def _shadow_target(
    spec: CommentedMap, where: str, checker: Checker, targets: Mapping[str, Target]
) -> str | None:
    # The block itself is the parity package's (`parse_shadow`); here only its target counts.
    node = spec.get("shadow")
    if node is None:
        return None
    target = node.get("target") if isinstance(node, Mapping) else None
    # An unknown or missing target is the shadow section's problem to report (config/shadow.py).
    return target if isinstance(target, str) and target in targets else None


def _days(spec: CommentedMap, key: str, where: str, checker: Checker, default: float) -> float:
    value = spec.get(key)
    if value is None:
        return default
    text = str(value).strip()
    try:
        seconds = float(text[:-1]) * DAY if text.endswith("d") else parse_duration(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        checker.problem(key_line(spec, key), f"{where}.{key}", f"{value!r}: write 7d, 12h or 30m")
        return default
    return seconds


def check_stages(
    routes: list[Route], legacy: str | None, targets: Mapping[str, Target], checker: Checker
) -> None:
    """Every route with a `stage:` must have that stage's shape."""
    for route in routes:
        problem = disagreement(route, legacy_of(route, legacy, targets))
        if problem is not None:
            checker.problem(route.line, f"routes[{route.name}].stage", problem)
