"""What keeps one slow or failing upstream from taking the gateway down with it.

Pure asyncio, no HTTP: the proxy wires these in. Each lives in its own module:
  retries    RetryPolicy (which tries to repeat, and full-jitter backoff), RetryBudget
  breaker    BreakerPolicy, CircuitBreaker (closed -> open -> half_open -> closed)
  limits     ConcurrencyLimit (a FIFO queue with a timeout before a cap), LimitExceeded
  ratelimit  TokenBucket, RateLimiter (per-key buckets, LRU-bounded), parse_rate
"""

from __future__ import annotations

from gateway.breaker import BreakerPolicy, BreakerState, CircuitBreaker, OnChange
from gateway.limits import ConcurrencyLimit, LimitExceeded
from gateway.ratelimit import RateLimiter, TokenBucket, parse_rate
from gateway.retries import RetryBudget, RetryPolicy
from gateway.rolling import Clock

__all__ = [
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "Clock",
    "ConcurrencyLimit",
    "LimitExceeded",
    "OnChange",
    "RateLimiter",
    "RetryBudget",
    "RetryPolicy",
    "TokenBucket",
    "parse_rate",
]
