"""`GET /_gateway/`'s numbers: `GET /_gateway/dashboard.json`, polled by the page.

Every route with its stage, weights, requests per second, error rate and p99 per target over
the last minute, its parity (when the gateway compares a shadow), its rollout's steps with the
current one; the migration's progress; and the ledger's history for the burn-down chart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.config.model import GatewayConfig, Route
from gateway.config.stages import candidate_of, legacy_of, stage_of
from gateway.migration.ledger import LedgerError, ledger_for
from gateway.migration.progress import history

RATE_WINDOW = 60.0
LEDGER_TTL = 2.0
Parity = Callable[[str], Mapping[str, Any] | None]


def route_view(
    config: GatewayConfig,
    route: Route,
    recent: Sequence[Mapping[str, Any]],
    parity: Parity | None,
    span: float = RATE_WINDOW,
) -> dict[str, Any]:
    """One route's row; `recent` covers the last `span` seconds (its rates are per second)."""
    legacy = legacy_of(route, config.legacy, config.targets)
    seen = {str(r["target"]): r for r in recent if r["route"] == route.name}
    targets = {}
    for target in [*route.targets, *(t for t in seen if t not in route.targets)]:
        row = seen.get(target, {})
        targets[target] = {
            "weight": dict(route.split).get(target),
            "rps": round(float(row.get("requests", 0.0)) / span, 2),
            "error_rate": row.get("error_rate", 0.0),
            "p99": row.get("p99"),
        }
    return {
        "name": route.name,
        "path": route.path,
        "stage": stage_of(route, legacy),
        "legacy": legacy,
        "candidate": candidate_of(route, legacy),
        "targets": targets,
        "rollout": _rollout(route),
        "parity": _parity(parity, route.name),
    }


def _rollout(route: Route) -> dict[str, Any] | None:
    spec = route.rollout
    if spec is None:
        return None
    state = spec.state
    return {
        "target": spec.target,
        "steps": list(spec.steps),
        "step": state.step + 1 if state.started_at > 0 else None,  # 1-based, as printed
        "status": state.status if state.started_at > 0 else "not started",
        "verdict": state.verdict,
    }


def _parity(parity: Parity | None, route: str) -> dict[str, Any] | None:
    entry = parity(route) if parity is not None else None
    if not entry:
        return None
    top = next((p for p in entry.get("paths", []) if p.get("verdict") == "real"), None)
    return {"score": entry.get("score"), "top_difference": top.get("path") if top else None}


class LedgerCache:
    """The ledger beside the table, read at most every LEDGER_TTL seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._read_at: float | None = None
        self._source = ""
        self._entries: list[dict[str, Any]] = []

    def entries(self, source: str) -> list[dict[str, Any]]:
        now = self.clock()
        stale = self._read_at is None or now - self._read_at > LEDGER_TTL
        if stale or source != self._source:
            try:
                self._entries = ledger_for(source).entries() if source != "<memory>" else []
            except LedgerError:
                self._entries = []
            self._read_at, self._source = now, source
        return self._entries


def dashboard(
    config: GatewayConfig,
    recent: Sequence[Mapping[str, Any]],
    entries: Sequence[Mapping[str, Any]],
    parity: Parity | None = None,
    span: float = RATE_WINDOW,
) -> dict[str, Any]:
    routes = [route_view(config, route, recent, parity, span) for route in config.routes]
    return {
        "version": config.version,
        "source": config.source,
        "routes": routes,
        "history": history(entries),
    }
