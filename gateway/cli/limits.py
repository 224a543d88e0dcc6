"""The limits part of `gateway status`: per target, whether its limits hold across the fleet
(shared on Redis, `state:`) or per process, and the requests in flight to it now."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from gateway.cli.credentials import admin_headers
from gateway.rollouts.metrics import MetricsUnavailable

ROUTES_PATH = "/_gateway/routes"
HEADER = ("TARGET", "LIMITS", "IN FLIGHT", "MAX")


def read_limits(
    base_url: str, timeout: float = 10.0, admin_key: str | None = None
) -> dict[str, dict[str, Any]]:
    """{target: {state, max_concurrency, in_flight}} as /_gateway/routes tells it."""
    url = base_url.rstrip("/") + ROUTES_PATH
    request = urllib.request.Request(url, headers=admin_headers(admin_key))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            described = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MetricsUnavailable(f"cannot read {url}: {getattr(exc, 'reason', exc)}") from exc
    targets = described.get("targets") if isinstance(described, dict) else None
    if not isinstance(targets, dict):
        return {}
    return {
        str(name): target["limits"]
        for name, target in targets.items()
        if isinstance(target, dict) and isinstance(target.get("limits"), dict)
    }


def render_limits(limits: dict[str, dict[str, Any]]) -> str:
    """One line per target: `fleet` (shared by every instance) or `local` (this process);
    nothing when no target has a concurrency limit or fleet-wide state (nothing to tell)."""
    if all(e.get("state") == "local" and e.get("max_concurrency") is None for e in limits.values()):
        return ""
    cells = [HEADER]
    for name, entry in limits.items():
        in_flight, most = entry.get("in_flight"), entry.get("max_concurrency")
        cells.append(
            (
                name,
                str(entry.get("state", "local")),
                "-" if in_flight is None else str(in_flight),
                "-" if most is None else str(most),
            )
        )
    widths = [max(len(line[column]) for line in cells) for column in range(len(HEADER))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )
