"""Event counts over a sliding time window, in fixed buckets: O(1) per call, bounded memory.

The window is cut into `buckets` equal slices; a count lives in the slice of the moment it was
added and leaves when that slice falls out of the window. So the window really covers between
`window * (buckets - 1) / buckets` and `window` seconds: the price of constant time and space.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds from an arbitrary origin that never goes back: `time.monotonic` or a test's fake."""


class RollingCounts:
    """`fields` independent counters (e.g. requests and failures) over the same window."""

    __slots__ = ("_buckets", "_clock", "_current", "_totals", "_width")

    def __init__(self, window: float, clock: Clock, *, buckets: int = 10, fields: int = 2) -> None:
        if not window > 0:
            raise ValueError(f"window must be positive seconds, not {window!r}")
        if buckets < 1 or fields < 1:
            raise ValueError("a rolling window needs at least one bucket and one field")
        self._width = window / buckets
        self._clock = clock
        self._buckets = [[0] * fields for _ in range(buckets)]
        self._totals = [0] * fields
        self._current = self._slice()

    def add(self, field: int, count: int = 1) -> None:
        self._advance()
        self._buckets[self._current % len(self._buckets)][field] += count
        self._totals[field] += count

    def total(self, field: int) -> int:
        self._advance()
        return self._totals[field]

    def clear(self) -> None:
        for bucket in self._buckets:
            bucket[:] = [0] * len(bucket)
        self._totals[:] = [0] * len(self._totals)
        self._current = self._slice()

    def _slice(self) -> int:
        return math.floor(self._clock() / self._width)

    def _advance(self) -> None:
        now = self._slice()
        steps = now - self._current
        if steps <= 0:  # same slice, or a clock that stepped back: count into the current one
            return
        if steps >= len(self._buckets):
            self.clear()
            return
        for offset in range(1, steps + 1):
            expired = self._buckets[(self._current + offset) % len(self._buckets)]
            for field, count in enumerate(expired):
                self._totals[field] -= count
            expired[:] = [0] * len(expired)
        self._current = now
