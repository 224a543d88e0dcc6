"""The scheduled rollout controller on Lambda: one judgement per route per EventBridge tick.

    ROLLOUT_CONFIG  the route table: s3://bucket/key or ssm:/name (read, edited, written back)
    ROLLOUT_ROUTES  routes to judge, comma-separated; empty or "*": every unfinished rollout
    METRICS         where the numbers are: cloudwatch:NAMESPACE (default the gateway's EMF one)

The clock is the scheduled event's `time`. Each route is judged on its own; when any could
not be judged the invocation fails after the others were, so the function's Errors metric
and alarms see it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.config.store import store_for
from gateway.errors import CommandError
from gateway.rollouts.controller import Outcome, run_once, running_rollouts
from gateway.rollouts.metrics import metrics_source_for
from gateway.telemetry.access_log import EMF_NAMESPACE_ENV


class RolloutFailed(Exception):
    """At least one route could not be judged (the others were)."""


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    config = os.environ.get("ROLLOUT_CONFIG", "")
    if not config:
        raise RolloutFailed("ROLLOUT_CONFIG is not set (s3://bucket/key or ssm:/name)")
    namespace = os.environ.get(EMF_NAMESPACE_ENV, "StranglerGateway")
    store = store_for(config)
    source = metrics_source_for(os.environ.get("METRICS") or f"cloudwatch:{namespace}")
    now = event_time(event)
    wanted = [n.strip() for n in os.environ.get("ROLLOUT_ROUTES", "").split(",") if n.strip()]
    try:
        names = running_rollouts(store) if wanted in ([], ["*"]) else wanted
    except CommandError as exc:
        raise RolloutFailed(str(exc)) from exc
    judged: list[dict[str, Any]] = []
    failed: list[str] = []
    for name in names:
        try:
            outcome: Outcome | None = run_once(store, source, name, now)
        except CommandError as exc:
            outcome = None
            failed.append(f"{name}: {exc}")
            print(f"{name}: could not judge: {exc}; nothing changed", flush=True)
        if outcome is not None:
            print(outcome, flush=True)
            judged.append({"route": name, "outcome": outcome.kind, "verdict": outcome.verdict})
    if failed:
        raise RolloutFailed("; ".join(failed))
    return {"judged": judged}


def event_time(event: Mapping[str, Any]) -> float:
    """The scheduled event's `time` (ISO 8601), else now."""
    stamp = event.get("time")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            pass
    return time.time()
