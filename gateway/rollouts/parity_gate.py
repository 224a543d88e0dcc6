"""`rollout: {min_parity: 99.5%, min_compared: 50}`: shadow parity as one more gate of a step.

The controller's judgement of the error rate and p99 comes first; then, for a route whose
rollout has `min_parity`, the parity of the step is read from the gateway's
`/_gateway/parity?route=NAME&window=...` (the URL metrics source; on CloudWatch min_parity
is refused: the EMF metrics carry counts, not the path table a verdict names):

- parity below min_parity over at least min_compared pairs: roll back, like an error-rate
  breach, the verdict naming the score and the top differing field path with its counts;
- fewer pairs than min_compared: a step that would advance waits;
- otherwise the decision stands, its verdict saying the parity.

The parity store counts whole minutes, so "over the step" is the step's minutes, rounded up
(and the minute it began in).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from typing import Any, Literal
from urllib.parse import urlencode

from gateway.cli.credentials import admin_headers
from gateway.config.model import RolloutSpec
from gateway.errors import CommandError
from gateway.rollouts.metrics import MetricsSource, MetricsUnavailable, PrometheusSource

PARITY_PATH = "/_gateway/parity"


class ParityUnavailable(CommandError):
    """The gateway's parity report could not be read; nothing is decided on it."""


def read_step_parity(
    source: MetricsSource, route: str, elapsed: float, admin_key: str | None = None
) -> dict[str, Any]:
    """The route's parity report entry over the step (`elapsed` seconds)."""
    if not isinstance(source, PrometheusSource):
        raise ParityUnavailable("min_parity needs the gateway's URL as --metrics, not CloudWatch")
    base = source.description.removesuffix("/_gateway/metrics")
    window = (math.ceil(max(elapsed, 0.0) / 60) + 1) * 60
    url = f"{base}{PARITY_PATH}?{urlencode({'route': route, 'window': f'{window}s'})}"
    headers = getattr(source, "_headers", None) or admin_headers(admin_key)
    ask = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(ask, timeout=10) as answer:
            found = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ParityUnavailable(f"cannot read {url}: {getattr(exc, 'reason', exc)}") from exc
    routes = found.get("routes") if isinstance(found, dict) else None
    if not isinstance(routes, list) or not routes:
        raise MetricsUnavailable(f"{url}: no parity for route {route!r}")
    entry: dict[str, Any] = routes[0]
    return entry


def parity_verdict(spec: RolloutSpec, entry: dict[str, Any]) -> tuple[str, str]:
    """(what parity calls for: "rollback" | "wait" | "pass", the words for the verdict)."""
    counts = entry.get("counts", {})
    judged = int(counts.get("compared", 0)) + int(counts.get("no_answer", 0))
    score = entry.get("score")
    minimum = (spec.min_parity or 0.0) * 100
    if judged < spec.min_compared or score is None:
        return "wait", f"parity: {judged} of {spec.min_compared} pairs compared so far"
    said = f"parity {score:.2f}% over {judged} pairs"
    if score >= minimum:
        return "pass", said
    return "rollback", f"{said} < {minimum:g}%{_top_path(entry)}"


def _top_path(entry: dict[str, Any]) -> str:
    real = [row for row in entry.get("paths", []) if row.get("verdict") == "real"]
    if not real:
        return ""
    top = max(real, key=lambda row: row.get("raw", 0))
    return (
        f"; top difference {top['path']} ({top['kind']}): {top['raw']} pairs, "
        f"noise {top['noise']:g}"
    )


Act = Literal["wait", "advance", "promote", "rollback"]


def gate(
    spec: RolloutSpec, decided: tuple[Act, str], entry: dict[str, Any], where: str, baseline: str
) -> tuple[Act, str]:
    """The controller's (action, verdict) with the step's parity taken into account."""
    action, verdict = decided
    if action == "rollback":
        return decided
    said, words = parity_verdict(spec, entry)
    if said == "rollback":
        return "rollback", f"rolled back at {where}: {words}; all traffic to {baseline}"
    if said == "wait" and action in ("advance", "promote"):
        return "wait", f"waiting at {where}: {words}"
    return action, f"{verdict}; {words}"
