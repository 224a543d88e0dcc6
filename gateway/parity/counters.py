"""Counts per route per minute: what the score, the report and the metrics are computed from.

The store only adds and sums; verdicts are computed when read (`score.score`), because whether
a path is noise depends on counts still to come. To say how many pairs had at least one *real*
difference, each minute keeps pairs counted by the exact set of paths they differed in.

Bounded: a route keeps `retention / 60` minute buckets (and one since-reset total); a bucket
keeps about MAX_PATHS distinct paths and MAX_SETS distinct path sets. Past them a path is
counted as OTHER, and a pair whose path set finds no room as the set {OTHER}. No noise is ever
learned for OTHER, so an overflow may count a noisy pair as a mismatch but never hides one.
The window is whole minutes: a 15m window sums the current minute and the 14 before it.

A fleet-wide (Redis) store maps one bucket to one hash `parity:{route}:{minute}` with an expiry
of the retention: fields `o:compared`, `o:skipped`, `o:dropped`, `o:no_answer`, `o:mismatched`,
`noise_pairs`, `r:{path}`, `k:{path}:{kind}`, `n:{path}` and `s:{sorted paths joined by \\n}`,
each raised with HINCRBY in one pipeline; `snapshot` is an HGETALL of the window's minutes,
summed; the since-reset totals are one more hash `parity:{route}:total`, deleted by `reset`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gateway.parity.compare import Kind, Outcome

MAX_PATHS = 256
MAX_SETS = 512
OTHER = "(other paths)"
BUCKET_SECONDS = 60


@dataclass(slots=True)
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)
    """compared, skipped, dropped, no_answer, and mismatched (pairs with any difference)."""
    pair_sets: Counter[frozenset[str]] = field(default_factory=Counter)
    raw: Counter[str] = field(default_factory=Counter)
    kinds: Counter[tuple[str, str]] = field(default_factory=Counter)
    noise_pairs: int = 0
    noise: Counter[str] = field(default_factory=Counter)

    @property
    def judged(self) -> int:
        """Pairs the score is over: compared, and those the candidate never answered."""
        return self.outcomes["compared"] + self.outcomes["no_answer"]

    def add_pair(self, outcome: Outcome, paths: Mapping[str, Kind]) -> None:
        self.outcomes[outcome] += 1
        if not paths:
            return
        self.outcomes["mismatched"] += 1
        kept = frozenset(self._path(path) for path in paths)
        for path, kind in paths.items():
            self.kinds[(self._path(path), kind)] += 1
        for path in kept:
            self.raw[path] += 1
        if kept in self.pair_sets or len(self.pair_sets) < MAX_SETS:
            self.pair_sets[kept] += 1
        else:
            self.pair_sets[frozenset({OTHER})] += 1

    def add_noise(self, paths: Iterable[str]) -> None:
        self.noise_pairs += 1
        for path in set(paths):
            if path in self.noise or len(self.noise) < MAX_PATHS:
                self.noise[path] += 1

    def merge(self, other: Tally) -> None:
        self.outcomes.update(other.outcomes)
        self.pair_sets.update(other.pair_sets)
        self.raw.update(other.raw)
        self.kinds.update(other.kinds)
        self.noise_pairs += other.noise_pairs
        self.noise.update(other.noise)

    def _path(self, path: str) -> str:
        return path if path in self.raw or len(self.raw) < MAX_PATHS else OTHER


@dataclass(frozen=True, slots=True)
class Snapshot:
    window: Tally
    total: Tally
    """Since the route's last reset (or the process start)."""


class ParityStore(Protocol):
    def record_pair(
        self, route: str, outcome: Outcome, paths: Mapping[str, Kind], now: float
    ) -> None: ...

    def record_noise(self, route: str, paths: Iterable[str], now: float) -> None: ...

    def snapshot(self, route: str, window: float, now: float) -> Snapshot: ...

    def reset(self, route: str) -> None: ...

    def routes(self) -> list[str]: ...


class LocalParityStore:
    """Per-process counts; safe to call from several threads."""

    def __init__(self, retention: float = 3600.0) -> None:
        self.retention = retention
        self._lock = threading.Lock()
        self._minutes: dict[str, dict[int, Tally]] = {}
        self._totals: dict[str, Tally] = {}

    def record_pair(
        self, route: str, outcome: Outcome, paths: Mapping[str, Kind], now: float
    ) -> None:
        with self._lock:
            self._bucket(route, now).add_pair(outcome, paths)
            self._totals.setdefault(route, Tally()).add_pair(outcome, paths)

    def record_noise(self, route: str, paths: Iterable[str], now: float) -> None:
        paths = tuple(paths)
        with self._lock:
            self._bucket(route, now).add_noise(paths)
            self._totals.setdefault(route, Tally()).add_noise(paths)

    def snapshot(self, route: str, window: float, now: float) -> Snapshot:
        first = int((now - min(window, self.retention)) // BUCKET_SECONDS) + 1
        summed, total = Tally(), Tally()
        with self._lock:
            for minute, tally in self._minutes.get(route, {}).items():
                if minute >= first:
                    summed.merge(tally)
            total.merge(self._totals.get(route, Tally()))
        return Snapshot(summed, total)

    def reset(self, route: str) -> None:
        with self._lock:
            self._minutes.pop(route, None)
            self._totals.pop(route, None)

    def routes(self) -> list[str]:
        with self._lock:
            return sorted(self._totals)

    def _bucket(self, route: str, now: float) -> Tally:
        minute = int(now // BUCKET_SECONDS)
        minutes = self._minutes.setdefault(route, {})
        if minute not in minutes:
            oldest = minute - int(self.retention // BUCKET_SECONDS)
            for stale in [m for m in minutes if m <= oldest]:
                del minutes[stale]
            minutes[minute] = Tally()
        return minutes[minute]
