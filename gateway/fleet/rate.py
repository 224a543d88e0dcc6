"""`rate` / `burst` per key across the fleet: the local token bucket, kept in Redis as GCRA.

The generic cell rate algorithm is a token bucket stored as one number per key, the time at
which the bucket would be full again (its "theoretical arrival time"): a request is admitted
when that time, plus one token's worth, is at most `burst` tokens' worth ahead of now. So
`burst` is the bucket's capacity and `rate` its refill, exactly as gateway/ratelimit.py, and
a key that is quiet for burst/rate seconds has no key left in Redis (PX expiry).

Why not the `limits` library: it offers fixed window, moving window and sliding window
counter, but no token bucket, so `burst` would change meaning (a moving window of `burst`
per burst/rate seconds admits 100 in 5 s at 20/s burst 20 where the local bucket admits
120); its Redis storage also builds its own client, outside the store's one deadline and
availability count. One script, one round trip per check, using Redis's clock (TIME), so
instances with skewed clocks agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Protocol

from gateway.fleet.store import StateStore, StateUnavailable
from gateway.fleet.wire import Script

_GCRA_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat + interval - tolerance
if now < allow_at then return tostring(allow_at - now) end
"""
"""Whether the key's bucket has a token now (else the microseconds until it will): the
check and the peek share it, and only the check then takes the token."""
_GCRA_TAKE = """
local new_tat = tat + interval
local full_in_ms = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', full_in_ms)
"""
_GCRA_SCRIPT = Script(_GCRA_ADMIT + _GCRA_TAKE + "return ''\n")
_GCRA_PEEK_SCRIPT = Script(_GCRA_ADMIT + "return ''\n")
MAX_KEY = 100
"""Longer client keys (a header's value can be kilobytes) are stored by their SHA-256."""


class LocalRateLimiter(Protocol):
    """gateway.ratelimit.RateLimiter, as the fallback while Redis is unavailable."""

    def check(self, key: str) -> float | None: ...

    def peek(self, key: str) -> float | None: ...


class FleetRateLimiter:
    """Token buckets per key shared by the fleet; `check` as RateLimiter.check, but awaited."""

    __slots__ = ("_interval_us", "_local", "_prefix", "_store", "_tolerance_us")

    def __init__(
        self, store: StateStore, *, name: str, rate: float, burst: int, local: LocalRateLimiter
    ) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError(f"rate must be positive and burst at least 1, not {rate}, {burst}")
        self._store = store
        self._interval_us = 1_000_000 / rate
        self._tolerance_us = self._interval_us * burst
        self._local = local
        self._prefix = store.key("rate", name, "")

    async def check(self, key: str) -> float | None:
        """None if `key` may go ahead now; else seconds until it may (for Retry-After).

        With Redis unavailable: on_unavailable=local asks the local limiter; closed raises
        StateUnavailable (503).
        """
        return await self._ask(_GCRA_SCRIPT, key, self._local.check)

    async def peek(self, key: str) -> float | None:
        """As `check`, but takes no token: whether `key` would go ahead now."""
        return await self._ask(_GCRA_PEEK_SCRIPT, key, self._local.peek)

    def take(self, key: str) -> None:
        """Take a token without waiting for the answer (a failed login: nobody waits for it);
        the local bucket takes one too, so it knows while Redis is away."""
        self._local.check(key)
        self._store.post(_GCRA_SCRIPT, (self._key(key),), (self._interval_us, self._tolerance_us))

    def _key(self, key: str) -> str:
        return self._prefix + _short(key)

    async def _ask(
        self, script: Script, key: str, local: Callable[[str], float | None]
    ) -> float | None:
        try:
            wait = await self._store.run(
                script, (self._key(key),), (self._interval_us, self._tolerance_us)
            )
        except StateUnavailable:
            if self._store.settings.on_unavailable == "closed":
                raise
            return local(key)
        return float(wait) / 1_000_000 if wait else None


def _short(key: str) -> str:
    """A client's key as Redis stores it: a long one (a header's value) by its digest."""
    if len(key) <= MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
