"""Durations as people write them in routes.yaml: 250ms, 10s, 2m, 1h (or bare seconds)."""

from __future__ import annotations

import math
import re

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds as a float; raise ValueError saying what is accepted."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (write 250ms, 10s or 2m)")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a duration (write 250ms, 10s or 2m)")
        return float(value)
    if isinstance(value, str):
        found = _DURATION_RE.match(value)
        if found:
            return float(found.group(1)) * _UNIT_SECONDS[found.group(2) or "s"]
    raise ValueError(f"{value!r} is not a duration (write 250ms, 10s or 2m)")


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"
