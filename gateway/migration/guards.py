"""The guard of each move between stages, judged from live evidence.

- legacy -> shadow: always;
- shadow -> canary: the route's parity (a running gateway's `GET /_gateway/parity?route=NAME`)
  at or above `min_parity` over at least `min_compared` compared pairs;
- canary -> new: the rollout has finished, or the candidate's error rate and p99 over the
  window are within the rollout's `max_error_rate` and `max_p99`;
- new -> retired: no fallback to the legacy, the route at `new` for `retire_after` by the
  ledger, and no request served by the legacy on the route in the metrics;
- any move back (or to the same stage): always, with a reason.
A move forward by more than one stage is judged as each of the moves it skips.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from gateway.cli.credentials import admin_headers
from gateway.cli.status import RECENT_PATH, read_admin
from gateway.config.model import STAGES, RolloutState, Route, Stage
from gateway.errors import CommandError
from gateway.rollouts.metrics import (
    MetricsSource,
    MetricsUnavailable,
    Window,
    latency,
    metrics_source_for,
    percent,
)

PARITY_PATH = "/_gateway/parity"
RECENT_LIMIT = 3600.0  # the hour a gateway keeps in per-minute buckets


@dataclass(frozen=True, slots=True)
class Verdict:
    guard: str
    allowed: bool
    numbers: dict[str, Any] = field(default_factory=dict)
    missing: str = ""  # what would let the move through

    def __str__(self) -> str:
        shown = ", ".join(f"{k} {v}" for k, v in self.numbers.items())
        said = f"guard {self.guard}: {'met' if self.allowed else 'refused'}"
        return (
            said + (f" ({shown})" if shown else "") + (f"; {self.missing}" if self.missing else "")
        )


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where the guards look: a running gateway's URL or cloudwatch:NS, the credential."""

    metrics: str | None
    admin_key: str | None = None
    window: float = 3600.0
    now: float = 0.0
    at_new_since: str | None = None  # from the ledger: when the route last reached `new`


def is_back(old: Stage, new: Stage) -> bool:
    return STAGES.index(new) <= STAGES.index(old)


def guards_for(old: Stage, new: Stage) -> list[tuple[Stage, Stage]]:
    """The forward moves from OLD to NEW, one per stage crossed."""
    at = STAGES.index(old)
    return [(STAGES[i], STAGES[i + 1]) for i in range(at, STAGES.index(new))]


def judge(
    move: tuple[Stage, Stage], route: Route, legacy: str, candidate: str, evidence: Evidence
) -> Verdict:
    try:
        match move:
            case ("shadow", "canary"):
                return _parity(route, evidence)
            case ("canary", "new"):
                return _canary_health(route, candidate, evidence)
            case ("new", "retired"):
                return _unused_legacy(route, legacy, evidence)
            case _:
                return Verdict(f"{move[0]}->{move[1]}", True)
    except (MetricsUnavailable, CommandError) as exc:
        return Verdict(f"{move[0]}->{move[1]}", False, {}, f"no evidence: {exc}")


def _parity(route: Route, evidence: Evidence) -> Verdict:
    name, spec = "shadow->canary parity", route.migration
    if evidence.metrics is None or not evidence.metrics.startswith(("http://", "https://")):
        return Verdict(name, False, {}, "give --metrics URL of a gateway running the shadow")
    entry = fetch_parity(evidence.metrics, route.name, evidence.admin_key)
    if entry is None:
        return Verdict(name, False, {}, f"the gateway reports no parity for {route.name!r}")
    score, compared = entry.get("score"), int(entry.get("counts", {}).get("compared", 0))
    numbers: dict[str, Any] = {
        "parity": "-" if score is None else f"{score:g}%",
        "min_parity": f"{spec.min_parity * 100:g}%",
        "compared": compared,
        "min_compared": spec.min_compared,
        "window": entry.get("window", ""),
    }
    top = next((p for p in entry.get("paths", []) if p.get("verdict") == "real"), None)
    if top is not None:
        numbers["top_difference"] = top.get("path")
    if compared < spec.min_compared:
        return Verdict(name, False, numbers, f"{spec.min_compared - compared} more pairs compared")
    if score is None or score < spec.min_parity * 100:
        why = f"parity {numbers['parity']} < {numbers['min_parity']}"
        return Verdict(name, False, numbers, why + (f" (fix {top['path']})" if top else ""))
    return Verdict(name, True, numbers)


def fetch_parity(url: str, route: str, admin_key: str | None) -> dict[str, Any] | None:
    where = f"{url.rstrip('/')}{PARITY_PATH}?route={quote(route)}"
    ask = urllib.request.Request(where, headers=admin_headers(admin_key))
    try:
        with urllib.request.urlopen(ask, timeout=10) as answer:
            report = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise MetricsUnavailable(f"{where} answered {exc.code}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MetricsUnavailable(f"cannot read {where}: {exc}") from exc
    entries = [e for e in report.get("routes", []) if e.get("route") == route]
    return entries[0] if entries else None


def window_of(
    source: MetricsSource, route: str, targets: Sequence[str], evidence: Evidence
) -> dict[str, Window]:
    start = RolloutState(0, evidence.now - evidence.window, "running")
    windows, _ = source.step(route, targets, start, evidence.now, p99=True)
    return windows


def _canary_health(route: Route, candidate: str, evidence: Evidence) -> Verdict:
    name, spec = "canary->new health", route.rollout
    if spec is not None and spec.state.status == "done":
        return Verdict(name, True, {"rollout": "finished"})
    if spec is None or evidence.metrics is None:
        needs = "a rollout: block to judge by" if spec is None else "--metrics URL|cloudwatch:NS"
        return Verdict(name, False, {}, f"the rollout is not finished; give {needs}")
    seen = _recent(evidence, route.name, candidate)
    if seen is None:  # a window past the gateway's hour, or CloudWatch
        source = metrics_source_for(evidence.metrics, evidence.admin_key)
        seen = window_of(source, route.name, (candidate,), evidence)[candidate]
    numbers = {
        "requests": int(seen.requests),
        "min_requests": spec.min_requests,
        "error_rate": percent(seen.error_rate),
        "max_error_rate": percent(spec.max_error_rate),
        "p99": latency(seen.p99),
        "max_p99": latency(spec.max_p99),
    }
    missing = ""
    if seen.requests < spec.min_requests:
        missing = f"{spec.min_requests - int(seen.requests)} more requests to the candidate"
    elif seen.error_rate > spec.max_error_rate:
        missing = "the error rate under max_error_rate"
    elif spec.max_p99 is not None and (seen.p99 is None or seen.p99 > spec.max_p99):
        missing = "the p99 under max_p99"
    return Verdict(name, not missing, numbers, missing)


def _recent(evidence: Evidence, route: str, target: str) -> Window | None:
    """The target's numbers over the window from a gateway's `/_gateway/recent` (<= 1h)."""
    url = evidence.metrics or ""
    if not url.startswith(("http://", "https://")) or evidence.window > RECENT_LIMIT:
        return None
    query = f"{RECENT_PATH}?window={int(evidence.window)}s"
    rows = read_admin(url, query, admin_key=evidence.admin_key).get("rows", [])
    row: dict[str, Any] = next(
        (r for r in rows if r.get("route") == route and r.get("target") == target), {}
    )
    return Window(row.get("requests", 0.0), row.get("errors", 0.0), row.get("p99"))


def _unused_legacy(route: Route, legacy: str, evidence: Evidence) -> Verdict:
    name, after = "new->retired unused legacy", route.migration.retire_after
    numbers: dict[str, Any] = {"retire_after": f"{after / 86400:g}d", "fallback": route.fallback}
    if route.fallback == legacy:
        return Verdict(name, False, numbers, f"remove `fallback: {legacy}` first")
    since = evidence.at_new_since
    held = evidence.now - datetime.fromisoformat(since).timestamp() if since else 0.0
    numbers["at_new_for"] = f"{held / 86400:.2f}d" if since else "no ledger line"
    if evidence.metrics is None:
        return Verdict(name, False, numbers, "give --metrics URL|cloudwatch:NS")
    source = metrics_source_for(evidence.metrics, evidence.admin_key)
    wide = Evidence(evidence.metrics, evidence.admin_key, after, evidence.now)
    served = window_of(source, route.name, (legacy,), wide)[legacy].requests
    numbers["legacy_served"] = int(served)
    if served > 0:
        return Verdict(name, False, numbers, f"{legacy} still served {int(served)} requests")
    if held < after:
        return Verdict(name, False, numbers, f"at new for {after / 86400:g}d by the ledger")
    return Verdict(name, True, numbers)
