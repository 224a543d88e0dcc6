"""The rollout controller: one judgement of a route's canary per call (`gateway rollout`).

The route's `rollout:` block says how: the target, its steps, how long a step lasts at least
(`interval`), how many requests it needs (`min_requests`), and the thresholds. Its `state:`
block, which the controller writes back into the table, says where it stands, so any run (a
shell, a cron job, the scheduled Lambda) carries on where the last one stopped:

- no state yet: the target gets the first step's weight, and the step begins now;
- a threshold breached (once min_requests is reached): everything back to the baseline;
- too few requests, or the interval not over: wait, change nothing;
- healthy: the next step, or at the last one everything to the target.

A step's numbers are the target's and the baseline's since the step began. Nothing is edited
when the table or the metrics cannot be read. Exit codes: 0 started, advanced, waited or done;
3 rolled back (now, or by an earlier run); 1 could not judge.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gateway.cli.credentials import add_admin_key
from gateway.cli.diff import percent_text
from gateway.cli.status import add_status_verb
from gateway.config.model import GatewayConfig, RolloutSpec, RolloutState, Route
from gateway.config.store import ConfigStore, store_for
from gateway.config.stored import Stored
from gateway.config.units import format_duration, parse_duration
from gateway.errors import CommandError
from gateway.migration.entries import Move
from gateway.migration.record import record_move
from gateway.rollouts.control import ACTIONS, run_control, steps_overview
from gateway.rollouts.edit import Change, all_to, checked, edit_text, shift_to
from gateway.rollouts.metrics import (
    MetricsSource,
    Window,
    latency,
    metrics_source_for,
    percent,
)
from gateway.rollouts.parity_gate import gate, read_step_parity

EXIT_OK, EXIT_ERROR, EXIT_ROLLED_BACK = 0, 1, 3
Kind = Literal[
    "started", "waiting", "paused", "advanced", "promoted", "rolled_back", "aborted", "done"
]
Action = Literal["wait", "advance", "promote", "rollback"]


class RolloutError(CommandError):
    """No judgement could be made; nothing was edited."""


@dataclass(frozen=True, slots=True)
class Outcome:
    route: str
    kind: Kind
    verdict: str

    @property
    def exit_code(self) -> int:
        return EXIT_ROLLED_BACK if self.kind in ("rolled_back", "aborted") else EXIT_OK

    @property
    def finished(self) -> bool:
        return self.kind in ("promoted", "rolled_back", "aborted", "done")

    def __str__(self) -> str:
        return f"{self.route}: {self.verdict}"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    verdict: str


def judge(spec: RolloutSpec, baseline: str, canary: Window, base: Window, now: float) -> Decision:
    """What a running step's numbers call for (pure: no I/O, the clock is `now`)."""
    state = spec.state
    where = _where(spec, state.step)
    numbers = _numbers(baseline, canary, base)
    if canary.requests < spec.min_requests:
        return Decision(
            "wait",
            f"waiting at {where}: {_count(canary.requests)} of {spec.min_requests} "
            f"requests so far; {numbers}",
        )
    breaches = _breaches(spec, baseline, canary, base)
    if breaches:
        return Decision(
            "rollback",
            f"rolled back at {where}: {', '.join(breaches)} over {_count(canary.requests)} "
            f"requests; all traffic to {baseline}",
        )
    elapsed = now - state.started_at
    if elapsed < spec.interval:
        return Decision(
            "wait",
            f"waiting at {where}: {format_duration(max(elapsed, 0.0))} of "
            f"{format_duration(spec.interval)} elapsed; {numbers}",
        )
    if canary.p99 is None and (spec.max_p99 is not None or spec.max_p99_ratio is not None):
        return Decision("wait", f"waiting at {where}: no p99 for {spec.target} yet; {numbers}")
    if state.step + 1 >= len(spec.steps):
        return Decision("promote", f"promoted {spec.target} to 100% after {where}: {numbers}")
    following = _where(spec, state.step + 1)
    return Decision("advance", f"advanced to {following} after {where}: {numbers}")


def _where(spec: RolloutSpec, step: int) -> str:
    return f"step {step + 1} ({percent_text(spec.steps[step])})"


def _count(requests: float) -> str:
    return f"{requests:.0f}"


def _numbers(baseline: str, canary: Window, base: Window) -> str:
    return (
        f"{_count(canary.requests)} requests, error rate {percent(canary.error_rate)}, "
        f"p99 {latency(canary.p99)} ({baseline}: {_count(base.requests)} requests, "
        f"error rate {percent(base.error_rate)}, p99 {latency(base.p99)})"
    )


def _breaches(spec: RolloutSpec, baseline: str, canary: Window, base: Window) -> list[str]:
    found = []
    if canary.error_rate > spec.max_error_rate:
        found.append(f"error rate {percent(canary.error_rate)} > {percent(spec.max_error_rate)}")
    p99 = canary.p99
    if p99 is not None and spec.max_p99 is not None and p99 > spec.max_p99:
        found.append(f"p99 {latency(p99)} > {latency(spec.max_p99)}")
    # Against the baseline only while it has as many requests: at 100% it has none, and a p99
    # of a handful of requests is noise.
    ratio = spec.max_p99_ratio
    reference = base.p99 if base.requests >= spec.min_requests else None
    if p99 is not None and ratio is not None and reference is not None and p99 > reference * ratio:
        found.append(f"p99 {latency(p99)} > {baseline} p99 {latency(reference)} x {ratio:g}")
    return found


def run_once(store: ConfigStore, source: MetricsSource, name: str, now: float) -> Outcome:
    """Read the table, judge route NAME's rollout, write the table back if it moves."""
    stored = store.read()
    route, spec = _rollout_of(checked(stored.text, store.description), name)
    state = spec.state
    if state.status != "running":  # paused by a person: nothing moves until resumed
        kinds: dict[str, Kind] = {"done": "done", "paused": "paused", "aborted": "aborted"}
        kind = kinds.get(state.status, "rolled_back")
        return Outcome(name, kind, state.verdict or state.status.replace("_", " "))
    if state.step >= len(spec.steps):
        raise RolloutError(f"route {name!r}: state.step {state.step} is past the last step")
    baseline = _baseline(route, spec)
    targets = (spec.target, baseline)
    edit = _Edit(store, stored, name)
    if state.started_at <= 0:
        was = dict(route.split).get(spec.target, 0.0)
        verdict = (
            f"started at {_where(spec, 0)}: {spec.target} {percent_text(was)} -> "
            f"{percent_text(spec.steps[0])}"
        )
        snapshot = source.snapshot(name, targets)
        edit(
            shift_to(spec.target, spec.steps[0]), RolloutState(0, now, "running", verdict, snapshot)
        )
        return Outcome(name, "started", verdict)
    p99 = spec.max_p99 is not None or spec.max_p99_ratio is not None
    windows, snapshot = source.step(name, targets, state, now, p99=p99)
    decision = judge(spec, baseline, windows[spec.target], windows[baseline], now)
    if spec.min_parity is not None:
        entry = read_step_parity(source, name, now - state.started_at)
        decided = (decision.action, decision.verdict)
        decision = Decision(*gate(spec, decided, entry, _where(spec, state.step), baseline))
    following = RolloutState(state.step + 1, now, "running", decision.verdict, snapshot)
    return _carry_out(decision, spec, baseline, following, edit)


def _carry_out(
    decision: Decision, spec: RolloutSpec, baseline: str, following: RolloutState, edit: _Edit
) -> Outcome:
    """Wait, or write the edit the decision calls for; FOLLOWING is the next step's state."""
    state, verdict = spec.state, decision.verdict
    match decision.action:
        case "wait":
            return Outcome(edit.route, "waiting", verdict)
        case "advance":
            edit(shift_to(spec.target, spec.steps[following.step]), following)
            return Outcome(edit.route, "advanced", verdict)
        case "promote":
            edit(all_to(spec.target), RolloutState(state.step, state.started_at, "done", verdict))
            return Outcome(edit.route, "promoted", verdict)
        case "rollback":
            back = RolloutState(state.step, state.started_at, "rolled_back", verdict)
            edit(all_to(baseline), back)
            return Outcome(edit.route, "rolled_back", verdict)


@dataclass(frozen=True, slots=True)
class _Edit:
    store: ConfigStore
    read: Stored
    route: str

    def __call__(self, change: Change, state: RolloutState) -> None:
        state = RolloutState(
            # whole seconds: the state block says the time in ISO 8601 to the second
            state.step,
            float(round(state.started_at)),
            state.status,
            state.verdict,
            state.snapshot,
        )
        change = change.with_state(state)
        text = edit_text(self.read.text, self.route, change, self.store.description)
        self.store.write(text, self.read)
        kind = "rollout-rollback" if state.status == "rolled_back" else "rollout-step"
        before = checked(self.read.text, self.store.description)
        after = checked(text, self.store.description)
        try:
            record_move(
                self.store.description, before, after, Move(self.route, kind, None, state.verdict)
            )
        except CommandError as exc:  # the table moved: say so, and that the ledger missed it
            print(
                f"gateway rollout: the move is made but not in the ledger: {exc}", file=sys.stderr
            )


def _rollout_of(config: GatewayConfig, name: str) -> tuple[Route, RolloutSpec]:
    route = next((r for r in config.routes if r.name == name), None)
    if route is None:
        names = ", ".join(r.name for r in config.routes)
        raise RolloutError(f"no route {name!r} in {config.source}; routes: {names}")
    if route.rollout is None:
        raise RolloutError(f"route {name!r} has no rollout: block")
    return route, route.rollout


def _baseline(route: Route, spec: RolloutSpec) -> str:
    """The route's `baseline:`, else the first target of its split that is not the canary."""
    others = [target for target in route.targets if target != spec.target]
    baseline = route.baseline or (others[0] if others else None)
    if baseline is None or baseline == spec.target:
        raise RolloutError(f"route {route.name!r}: no baseline target besides {spec.target}")
    return baseline


def running_rollouts(store: ConfigStore) -> list[str]:
    """The routes whose rollout is not finished (including those not started yet)."""
    config = checked(store.read().text, store.description)
    return [
        route.name
        for route in config.routes
        if route.rollout is not None and route.rollout.state.status == "running"
    ]


def watch(
    judge_once: Callable[[], Outcome],
    every: float | None,
    sleep: Callable[[float], None],
    overview: Callable[[], str] | None = None,
) -> int:
    """Judge once, or (with `every`) again and again until the rollout finishes or fails.

    Watching, each line starts with the UTC time, and a judgement that says what the one
    before said (the same verdict, the same steps) prints nothing.
    """
    previous = None
    while True:
        try:
            outcome = judge_once()
            shown = f"{outcome}\n{overview()}" if overview is not None else str(outcome)
        except CommandError as exc:
            print(f"gateway rollout: {exc}; nothing changed", file=sys.stderr, flush=True)
            return EXIT_ERROR
        if every is None:
            print(shown, flush=True)
        elif shown != previous:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            print("\n".join(f"{stamp}  {line}" for line in shown.splitlines()), flush=True)
        previous = shown
        if every is None or outcome.finished:
            return outcome.exit_code
        sleep(every)


def run_rollout(args: argparse.Namespace) -> int:
    if args.file in ACTIONS:  # gateway rollout pause|resume|abort|retry FILE ROUTE
        if args.action_route is None:
            print(f"usage: gateway rollout {args.file} FILE ROUTE", file=sys.stderr)
            return EXIT_ERROR
        return run_control(args, args.file, args.route, args.action_route)
    if args.metrics is None:
        print("gateway rollout: --metrics URL|cloudwatch:NS is required", file=sys.stderr)
        return EXIT_ERROR
    try:
        store = store_for(args.file)
        source = metrics_source_for(args.metrics, args.admin_key)
    except CommandError as exc:
        print(f"gateway rollout: {exc}", file=sys.stderr)
        return EXIT_ERROR
    now: Callable[[], float] = time.time if args.now is None else (lambda: float(args.now))
    every = args.every if args.watch else None
    overview = (lambda: steps_overview(store, args.route)) if args.watch else None
    return watch(lambda: run_once(store, source, args.route, now()), every, time.sleep, overview)


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than zero")
    return seconds


def add_rollout_verbs(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `rollout` and `status`; each sets `run(args) -> exit code`."""
    verb = verbs.add_parser(
        "rollout", help="judge a route's canary once: start, wait, advance, promote, roll back"
    )
    verb.add_argument(
        "file",
        metavar="[pause|resume|abort|retry] FILE",
        help="a path, s3://bucket/key or ssm:/name",
    )
    verb.add_argument("route", metavar="ROUTE")
    verb.add_argument("action_route", nargs="?", help=argparse.SUPPRESS)
    verb.add_argument("--by", default=None, help="who steers it, for the migration ledger")
    verb.add_argument(
        "--metrics", metavar="SOURCE", help="a gateway's URL or cloudwatch:NS (to judge)"
    )
    add_admin_key(verb)
    verb.add_argument(
        "--every",
        type=_duration,
        default=30.0,
        metavar="DURATION",
        help="with --watch: the time between judgements (default 30s; 250ms, 10s, 2m)",
    )
    when = verb.add_mutually_exclusive_group()
    when.add_argument("--watch", action="store_true", help="judge again until it finishes")
    when.add_argument("--now", type=float, metavar="EPOCH", help="judge as at this time")
    verb.set_defaults(run=run_rollout)
    add_status_verb(verbs)
