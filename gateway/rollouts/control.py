"""`gateway rollout pause|resume|abort|retry FILE ROUTE`: a person steering a rollout.

- pause: the controller leaves the route as it is (each judgement says "paused") until...
- resume: ...the rollout runs again from the step it was at;
- abort: all of the route back to its baseline; the rollout stops (status aborted);
- retry: after a rollback or an abort, the rollout starts again from its first step.
Each is one edit of the `state:` block (and, for abort, the split) through the rollout edit
engine, refused when the rollout's status does not allow it, and one line of the ledger.
"""

from __future__ import annotations

import argparse
import sys

from gateway.cli.diff import percent_text
from gateway.config.model import RolloutSpec, RolloutState, Route
from gateway.config.store import ConfigStore, store_for
from gateway.config.units import format_duration
from gateway.errors import CommandError
from gateway.migration.entries import Move
from gateway.migration.record import record_move
from gateway.rollouts.edit import Change, all_to, checked, edit_text, shift_to
from gateway.rollouts.metrics import latency, percent

ACTIONS = ("pause", "resume", "abort", "retry")
ALLOWED = {
    "pause": ("running",),
    "resume": ("paused",),
    "abort": ("running", "paused"),
    "retry": ("rolled_back", "aborted"),
}


class ControlError(CommandError):
    """The rollout cannot be steered so; nothing was written."""


def steer(spec: str, name: str, action: str, by: str | None = None) -> str:
    """Carry out ACTION on route NAME's rollout in the table at SPEC; say what was done."""
    store = store_for(spec)
    stored = store.read()
    before = checked(stored.text, store.description)
    route = next((r for r in before.routes if r.name == name), None)
    if route is None or route.rollout is None:
        raise ControlError(f"route {name!r} has no rollout: block in {store.description}")
    rollout = route.rollout
    status = rollout.state.status
    if status not in ALLOWED[action]:
        allowed = " or ".join(ALLOWED[action])
        raise ControlError(f"route {name!r}: cannot {action} a rollout that is {status} "
                           f"(only one that is {allowed})")  # fmt: skip
    plan, state, said = _planned(route, rollout, action)
    text = edit_text(stored.text, name, plan.with_state(state), store.description)
    store.write(text, stored)
    after = checked(text, store.description)
    record_move(spec, before, after, Move(name, f"rollout-{action}", by, said))
    return f"{name}: {said}"


def _planned(route: Route, rollout: RolloutSpec, action: str) -> tuple[Change, RolloutState, str]:
    state = rollout.state
    keep = shift_to(rollout.target, dict(route.split).get(rollout.target, 0.0))
    step = f"step {state.step + 1}"
    if action == "pause":
        return keep, _with(state, "paused", f"paused at {step}"), f"paused at {step}"
    if action == "resume":
        return keep, _with(state, "running", f"resumed at {step}"), f"resumed at {step}"
    if action == "abort":
        baseline = route.baseline or next(t for t in route.targets if t != rollout.target)
        said = f"aborted at {step}: all to {baseline}"
        return all_to(baseline), _with(state, "aborted", said), said
    # retry: a state never started, so the controller begins again at the first step
    return keep, RolloutState(0, 0.0, "running", "retry from step 1"), "retry from step 1"


def _with(state: RolloutState, status: str, verdict: str) -> RolloutState:
    return RolloutState(state.step, state.started_at, status, verdict, state.snapshot)


def run_control(args: argparse.Namespace, action: str, file: str, route: str) -> int:
    try:
        print(steer(file, route, action, getattr(args, "by", None)))
    except CommandError as exc:
        print(f"gateway rollout {action}: {exc}", file=sys.stderr)
        return 1
    return 0


def steps_overview(store: ConfigStore, name: str) -> str:
    """`steps: 10% [50%] 100%` with the current step marked, and the thresholds judged by."""
    config = checked(store.read().text, store.description)
    spec = next((r.rollout for r in config.routes if r.name == name), None)
    if spec is None:
        raise ControlError(f"route {name!r} has no rollout: block in {store.description}")
    current = spec.state.step if spec.state.started_at > 0 else None
    marks = [
        f"[{percent_text(step)}]" if index == current else percent_text(step)
        for index, step in enumerate(spec.steps)
    ]
    limits = [f"min {spec.min_requests} requests", f"5xx <= {percent(spec.max_error_rate)}"]
    if spec.max_p99 is not None:
        limits.append(f"p99 <= {latency(spec.max_p99)}")
    if spec.max_p99_ratio is not None:
        limits.append(f"p99 <= baseline x {spec.max_p99_ratio:g}")
    interval = format_duration(spec.interval)
    return f"steps: {' '.join(marks)} ({spec.state.status}); per step: {interval}, " + ", ".join(
        limits
    )
