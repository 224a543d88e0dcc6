"""A route's parity from its counts: verdicts per path, then the share of clean pairs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.parity.counters import Tally
from gateway.parity.noise import expected_noise, is_real
from gateway.parity.paths import covered
from gateway.parity.spec import CompareSpec

Verdict = Literal["real", "noise", "ignored"]
_RANK = {"real": 0, "noise": 1, "ignored": 2}


@dataclass(frozen=True, slots=True)
class PathRow:
    path: str
    kind: str
    raw: int
    noise: float
    """The primary-vs-primary count scaled to the pairs compared."""
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class Score:
    score: float | None
    reason: str | None
    """Why there is no score yet."""
    judged: int
    mismatched: int
    """Pairs with at least one real difference."""
    rows: tuple[PathRow, ...]


def score(tally: Tally, spec: CompareSpec) -> Score:
    judged = tally.judged
    rows = tuple(sorted(_rows(tally, spec), key=lambda r: (_RANK[r.verdict], -r.raw, r.path)))
    real = {row.path for row in rows if row.verdict == "real"}
    mismatched = sum(n for paths, n in tally.pair_sets.items() if not real.isdisjoint(paths))
    if judged < spec.min_compared:
        reason = f"{judged} of {spec.min_compared} pairs compared"
        return Score(None, reason, judged, mismatched, rows)
    return Score(100.0 * (1 - mismatched / judged), None, judged, mismatched, rows)


def _rows(tally: Tally, spec: CompareSpec) -> list[PathRow]:
    judged = tally.judged
    rows = []
    for path, raw in tally.raw.items():
        noise = expected_noise(tally.noise[path], tally.noise_pairs, judged)
        verdict: Verdict
        if covered(path, spec.ignore):
            verdict = "ignored"
        elif is_real(raw, noise, judged, spec.relative_threshold, spec.absolute_threshold):
            verdict = "real"
        else:
            verdict = "noise"
        rows.append(PathRow(path, _kind(tally, path), raw, noise, verdict))
    return rows


def _kind(tally: Tally, path: str) -> str:
    kinds = [(n, kind) for (p, kind), n in tally.kinds.items() if p == path]
    return max(kinds)[1] if kinds else "value"
