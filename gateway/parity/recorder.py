"""The few calls the corridor makes once the answers are in: the whole of the wiring's logic.

recorder.pair(route, spec, Pair(line, primary, candidate), now)  # candidate None: none
recorder.noise(route, spec, primary, again, now)             # the primary asked twice
recorder.outcome(route, "dropped" | "skipped", now)          # no pair to compare
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.parity.compare import Answer, Comparison, Outcome, compare, judge
from gateway.parity.counters import LocalParityStore, ParityStore
from gateway.parity.evidence import EvidenceLog
from gateway.parity.spec import ShadowSpec


@dataclass(frozen=True, slots=True)
class Pair:
    line: str
    """The request line from `evidence.request_line` (query already redacted)."""
    primary: Answer
    candidate: Answer | None
    """None when the candidate failed or ran past `timeout`."""


@dataclass(slots=True)
class Recorder:
    store: ParityStore = field(default_factory=LocalParityStore)
    evidence: EvidenceLog = field(default_factory=EvidenceLog)

    def pair(self, route: str, spec: ShadowSpec, pair: Pair, now: float) -> Comparison:
        """Compare and count one copied request."""
        result = judge(pair.primary, pair.candidate, spec)
        paths = {d.path: d.kind for d in result.differences}
        self.store.record_pair(route, result.outcome, paths, now)
        if result.differences:
            self.evidence.add(route, pair.line, result.differences, now)
        return result

    def noise(
        self, route: str, spec: ShadowSpec, primary: Answer, again: Answer, now: float
    ) -> None:
        """Count where two answers of the primary to the same request differ."""
        if max(len(primary.body), len(again.body)) > spec.max_body:
            return
        paths = [d.path for d in compare(primary, again, spec)]
        self.store.record_noise(route, paths, now)

    def outcome(self, route: str, outcome: Outcome, now: float) -> None:
        self.store.record_pair(route, outcome, {}, now)

    def reset(self, route: str) -> None:
        self.store.reset(route)
        self.evidence.reset(route)
