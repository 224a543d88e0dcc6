"""When a failed try may be tried again, how long to wait first, and how many retries to allow.

A retry budget keeps retries from multiplying load on an upstream that is already failing:
retries may be at most `budget` of the requests seen in the last ten seconds, with a floor of
`min_retries_per_second` so that a quiet route can still retry at all (as Envoy and Finagle do).
"""

from __future__ import annotations

import time

from gateway.config.model import RetryPolicy
from gateway.protection.rolling import Clock, RollingCounts

BUDGET_WINDOW = 10.0
"""Seconds of history a RetryBudget weighs."""

_REQUESTS, _RETRIES = 0, 1


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
