"""Token buckets per client key (address, header, JWT subject), in bounded memory.

A key's bucket holds up to `burst` tokens and regains `rate` a second; each request takes one.
Past `max_keys`, the key used least recently is forgotten: should it come back, it starts with
a full bucket again, which errs towards letting a request through rather than growing memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from gateway.protection.rolling import Clock


class TokenBucket:
    __slots__ = ("_burst", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        _check_rate(rate, burst)
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def peek(self) -> float | None:
        """None if a token is there (none is taken); else the seconds until one will be."""
        elapsed = max(0.0, self._clock() - self._stamp)
        tokens = min(self._burst, self._tokens + elapsed * self._rate)
        return None if tokens >= 1.0 else (1.0 - tokens) / self._rate

    def check(self) -> float | None:
        """None if a token was taken; else the seconds until one will be there."""
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self._rate


class RateLimiter:
    __slots__ = ("_buckets", "_burst", "_clock", "_max_keys", "_rate")

    def __init__(
        self,
        rate: float,
        burst: int,
        max_keys: int = 100_000,
        clock: Clock = time.monotonic,
    ) -> None:
        _check_rate(rate, burst)
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys}")
        self._rate = rate
        self._burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: str) -> float | None:
        """None if `key` may go ahead now; else seconds until it may (for Retry-After)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, self._clock)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.check()

    def peek(self, key: str) -> float | None:
        """None if `key` has a token left (none is taken); else seconds until it will."""
        bucket = self._buckets.get(key)
        return None if bucket is None else bucket.peek()


def _check_rate(rate: float, burst: int) -> None:
    if not rate > 0:
        raise ValueError(f"rate must be a positive number of tokens a second, not {rate!r}")
    if burst < 1:
        raise ValueError(f"burst must be at least 1, not {burst}")
