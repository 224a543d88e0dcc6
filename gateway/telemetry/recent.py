"""The recent past, per route and target: per-minute buckets of requests, 5xx and latency.

`/_gateway/metrics` counts since the process started; a canary failing 43% of its requests in
the last five minutes reads 1.19% there after a healthy hour. These buckets answer "over the
last N minutes" (up to an hour) in the running gateway, without a restart: each minute keeps
its own counts and latency histogram, and a window merges the minutes it covers (the minute
in progress included). Under `uvicorn --workers N` each worker keeps its own.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

MINUTE = 60.0
KEPT_MINUTES = 61
# Finer than the Prometheus histogram below 5 ms, so a 2 ms p99 is told from a 4 ms one.
LATENCY_BOUNDS = (
    0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.0075,
    0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
Key = tuple[str, str]


class RecentWindow:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._minutes: dict[int, dict[Key, list[float]]] = {}
        self._lock = threading.Lock()

    def observe(self, route: str, target: str, status: int, seconds: float) -> None:
        minute = int(self.clock() // MINUTE)
        with self._lock:
            counts = self._minutes.get(minute)
            if counts is None:
                counts = self._minutes[minute] = {}
                for old in [m for m in self._minutes if m <= minute - KEPT_MINUTES]:
                    del self._minutes[old]
            row = counts.get((route, target))
            if row is None:
                # requests, errors, then one count per latency bound and the +Inf count
                row = counts[(route, target)] = [0.0] * (len(LATENCY_BOUNDS) + 3)
            row[0] += 1
            row[1] += 1 if status >= 500 else 0
            row[2 + bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1

    def summary(self, seconds: float) -> list[dict[str, Any]]:
        """Each (route, target) seen over the last SECONDS: requests, errors, p50, p99."""
        now = int(self.clock() // MINUTE)
        first = now - max(1, math.ceil(seconds / MINUTE)) + 1
        merged: dict[Key, list[float]] = {}
        with self._lock:
            for minute, counts in self._minutes.items():
                if first <= minute <= now:
                    for key, row in counts.items():
                        total = merged.setdefault(key, [0.0] * len(row))
                        for index, value in enumerate(row):
                            total[index] += value
        return [_entry(key, row) for key, row in sorted(merged.items())]


def _entry(key: Key, row: list[float]) -> dict[str, Any]:
    requests, errors, buckets = row[0], row[1], row[2:]
    return {
        "route": key[0],
        "target": key[1],
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "p50": quantile(0.50, buckets),
        "p99": quantile(0.99, buckets),
    }


def quantile(q: float, counts: Sequence[float]) -> float | None:
    """The q-quantile of per-bucket counts over LATENCY_BOUNDS (+Inf last), interpolated."""
    total = sum(counts)
    if total <= 0:
        return None
    rank, below, lower = q * total, 0.0, 0.0
    for bound, count in zip(LATENCY_BOUNDS, counts, strict=False):
        if count and below + count >= rank:
            return lower + (bound - lower) * (rank - below) / count
        below, lower = below + count, bound
    return LATENCY_BOUNDS[-1]
