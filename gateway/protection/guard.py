"""One target's protection: its retry policy and budget, breaker and concurrency limit."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.model import RetryPolicy, Target
from gateway.protection.breaker import CircuitBreaker, OnChange
from gateway.protection.concurrency import ConcurrencyLimit
from gateway.protection.retries import RetryBudget


@dataclass(slots=True)
class TargetGuard:
    """One target's protection, built once per target definition and kept across reloads."""

    retry: RetryPolicy
    budget: RetryBudget
    breaker: CircuitBreaker | None
    limit: ConcurrencyLimit | None
    timeout: float = 30.0
    """The target's timeout: also how long a client may leave a streamed answer unread."""

    @classmethod
    def build(cls, target: Target, on_change: OnChange | None = None) -> TargetGuard:
        spec = target.protection
        breaker = None
        if spec.breaker is not None:
            breaker = CircuitBreaker(target.name, spec.breaker, on_change=on_change)
        limit = None
        if spec.max_concurrency is not None:
            limit = ConcurrencyLimit(spec.max_concurrency, spec.queue_timeout)
        return cls(spec.retry, RetryBudget(spec.retry), breaker, limit, target.timeout)
