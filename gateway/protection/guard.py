"""One target's protection: its retry policy and budget, breaker and concurrency limit.

With a `StateStore` (the `state:` block), the concurrency limit and the breaker are the fleet's
(gateway/fleet), each keeping its per-process twin as the fallback while Redis is away; without
one, they are this process's alone. That choice is made here, once per target.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.model import RetryPolicy, Target
from gateway.fleet.breaker import FleetBreaker
from gateway.fleet.concurrency import FleetConcurrencyLimit
from gateway.fleet.store import StateStore
from gateway.protection.breaker import CircuitBreaker, OnChange
from gateway.protection.concurrency import ConcurrencyLimit
from gateway.protection.retries import RetryBudget

LEASE_MARGIN = 2.0
"""Seconds a fleet slot outlives the target's timeout: a killed instance's slots come back then."""


@dataclass(slots=True)
class TargetGuard:
    """One target's protection, built once per target definition and kept across reloads."""

    retry: RetryPolicy
    budget: RetryBudget
    breaker: CircuitBreaker | FleetBreaker | None
    limit: ConcurrencyLimit | FleetConcurrencyLimit | None
    timeout: float = 30.0
    """The target's timeout: also how long a client may leave a streamed answer unread."""

    @property
    def fleet_wide(self) -> bool:
        return isinstance(self.limit, FleetConcurrencyLimit) or isinstance(
            self.breaker, FleetBreaker
        )

    @classmethod
    def build(
        cls, target: Target, on_change: OnChange | None = None, store: StateStore | None = None
    ) -> TargetGuard:
        spec = target.protection
        breaker: CircuitBreaker | FleetBreaker | None = None
        if spec.breaker is not None:
            policy = spec.breaker

            def local() -> CircuitBreaker:
                return CircuitBreaker(target.name, policy, on_change=on_change)

            if store is None:
                breaker = local()
            else:
                breaker = FleetBreaker(store, name=target.name, policy=policy, local=local)
        limit: ConcurrencyLimit | FleetConcurrencyLimit | None = None
        if spec.max_concurrency is not None:
            limit = ConcurrencyLimit(spec.max_concurrency, spec.queue_timeout)
            if store is not None:
                limit = FleetConcurrencyLimit(
                    store,
                    name=target.name,
                    limit=spec.max_concurrency,
                    queue_timeout=spec.queue_timeout,
                    lease=target.timeout + LEASE_MARGIN,
                    local=limit,
                )
        return cls(spec.retry, RetryBudget(spec.retry), breaker, limit, target.timeout)
