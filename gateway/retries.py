"""When a failed try may be tried again, how long to wait first, and how many retries to allow.

A retry budget keeps retries from multiplying load on an upstream that is already failing:
retries may be at most `budget` of the requests seen in the last ten seconds, with a floor of
`min_retries_per_second` so that a quiet route can still retry at all (as Envoy and Finagle do).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from gateway.rolling import Clock, RollingCounts

BUDGET_WINDOW = 10.0
"""Seconds of history a RetryBudget weighs."""

_MAX_EXPONENT = 64  # past this, base * 2**n overflows a float long before it matters
_REQUESTS, _RETRIES = 0, 1


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 2
    """Total tries, the first included: 1 means never retry."""
    methods: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS"})
    statuses: frozenset[int] = frozenset({502, 503, 504})
    backoff: float = 0.025
    backoff_max: float = 0.25
    budget: float = 0.2
    min_retries_per_second: float = 3.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.attempts < 1:
            problems.append(f"attempts must be at least 1, not {self.attempts}")
        if self.backoff < 0 or self.backoff_max < 0:
            problems.append("backoff and backoff_max must not be negative")
        if self.budget < 0 or self.min_retries_per_second < 0:
            problems.append("budget and min_retries_per_second must not be negative")
        if problems:
            raise ValueError("; ".join(problems))

    def retryable_method(self, method: str) -> bool:
        return method.upper() in self.methods

    def retryable_status(self, status: int) -> bool:
        return status in self.statuses

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to sleep before retry `attempt` (0 for the first): full-jitter backoff.

        Uniform over [0, min(backoff_max, backoff * 2**attempt)], so that clients which failed
        together do not come back together.
        """
        if attempt < 0:
            raise ValueError(f"attempt must not be negative, not {attempt}")
        ceiling = min(self.backoff_max, self.backoff * 2 ** min(attempt, _MAX_EXPONENT))
        if rng is None:
            return random.uniform(0.0, ceiling)
        return rng.uniform(0.0, ceiling)


class RetryBudget:
    """Counts requests and retries over a sliding ten-second window; shared by one route."""

    __slots__ = ("_counts", "_policy")

    def __init__(self, policy: RetryPolicy, clock: Clock = time.monotonic) -> None:
        self._policy = policy
        self._counts = RollingCounts(BUDGET_WINDOW, clock)

    def record_request(self) -> None:
        """Count one original request (not its retries)."""
        self._counts.add(_REQUESTS)

    def try_spend(self) -> bool:
        """True, and count the retry, if the budget still has room for one."""
        allowed = max(
            self._policy.budget * self._counts.total(_REQUESTS),
            self._policy.min_retries_per_second * BUDGET_WINDOW,
        )
        if self._counts.total(_RETRIES) < allowed:
            self._counts.add(_RETRIES)
            return True
        return False
