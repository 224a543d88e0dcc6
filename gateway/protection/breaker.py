"""A circuit breaker per upstream: stop sending to one that keeps failing, then probe it.

closed -> open     when, within `window`, at least `min_requests` were seen and the share of
                   failures reached `failure_rate`; or after `consecutive_failures` in a row.
open -> half_open  on the first `allow()` once `open_for` seconds have passed.
half_open          admits `half_open_probes` probes. Every probe succeeds -> closed, with the
                   counts forgotten; any failure -> open again for another `open_for`.

Callers pair each `allow()` that returned True with exactly one `record(success)` (or
`record_status(status)` for an upstream's answer).

What is a failure (`count`): by default `gateway_errors`, the answers that say the target is
unwell (502, 503, 504) besides timeouts and connection failures, which callers always
record as failures. A 500 is the application's answer to one request, which one client can
provoke at will: counting it (`count: 5xx`, Envoy's `consecutive_5xx`) would let a single
client open the breaker for everyone. `gateway_errors` is Envoy's
`consecutive_gateway_failure`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from gateway.config.model import BreakerPolicy
from gateway.protection.rolling import Clock, RollingCounts

BreakerState = Literal["closed", "open", "half_open"]
OnChange = Callable[[str, str, str], None]
"""on_change(breaker name, old state, new state): for a log line or a metric."""

_REQUESTS, _FAILURES = 0, 1


class CircuitBreaker:
    __slots__ = (
        "_changed_at",
        "_clock",
        "_consecutive",
        "_counts",
        "_issued",
        "_on_change",
        "_outstanding",
        "_policy",
        "_state",
        "_succeeded",
        "name",
    )

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy,
        clock: Clock = time.monotonic,
        on_change: OnChange | None = None,
    ) -> None:
        self.name = name
        self._policy = policy
        self._clock = clock
        self._on_change = on_change
        self._state: BreakerState = "closed"
        self._counts = RollingCounts(policy.window, clock)
        self._consecutive = 0
        self._changed_at = clock()
        self._issued = 0  # probes admitted in this half-open round
        self._outstanding = 0  # of those, not yet recorded
        self._succeeded = 0

    @property
    def state(self) -> BreakerState:
        """The state as of the last call; open turns half_open only on `allow()`."""
        return self._state

    def allow(self) -> bool:
        if self._state == "closed":
            return True
        now = self._clock()
        if self._state == "open":
            if now - self._changed_at < self._policy.open_for:
                return False
            self._change("half_open", now)
        elif self._round_is_stuck(now):
            # A probe whose result never came (its caller was cancelled, say) must not keep
            # the breaker half-open for ever: after open_for, start a fresh round of probes.
            self._reset_round(now)
        if self._issued >= self._policy.half_open_probes:
            return False
        self._issued += 1
        self._outstanding += 1
        return True

    def record_status(self, status: int) -> None:
        """Record an upstream's answer, a failure or not as the policy's `count` says."""
        self.record(not self._policy.failed(status))

    def record(self, success: bool) -> None:
        if self._state == "open":
            return  # the late answer to a request let through before the breaker opened
        now = self._clock()
        if self._state == "half_open":
            self._record_probe(success, now)
            return
        self._counts.add(_REQUESTS)
        if success:
            self._consecutive = 0
        else:
            self._counts.add(_FAILURES)
            self._consecutive += 1
        if self._consecutive >= self._policy.consecutive_failures or self._rate_exceeded():
            self._change("open", now)

    def retry_after(self) -> float:
        """Seconds until `allow()` could next admit a request (0.0 if it would now)."""
        if self._state == "closed":
            return 0.0
        if self._state == "half_open" and self._issued < self._policy.half_open_probes:
            return 0.0
        return max(0.0, self._changed_at + self._policy.open_for - self._clock())

    def _record_probe(self, success: bool, now: float) -> None:
        if not success:
            self._change("open", now)  # any failure seen while probing: the upstream is not back
            return
        if self._outstanding == 0:
            return  # a success from before the breaker opened proves nothing about now
        self._outstanding -= 1
        self._succeeded += 1
        if self._succeeded >= self._policy.half_open_probes:
            self._change("closed", now)

    def _rate_exceeded(self) -> bool:
        requests = self._counts.total(_REQUESTS)
        if requests < self._policy.min_requests:
            return False
        return self._counts.total(_FAILURES) >= self._policy.failure_rate * requests

    def _round_is_stuck(self, now: float) -> bool:
        return (
            self._issued >= self._policy.half_open_probes
            and now - self._changed_at >= self._policy.open_for
        )

    def _reset_round(self, now: float) -> None:
        self._changed_at = now
        self._issued = self._outstanding = self._succeeded = 0

    def _change(self, new: BreakerState, now: float) -> None:
        old, self._state = self._state, new
        self._reset_round(now)
        self._counts.clear()
        self._consecutive = 0
        if self._on_change is not None:
            self._on_change(self.name, old, new)
