"""`max_concurrency` across the fleet: leases in a sorted set, waiters in ticket order.

Keys, under the store's prefix and the limit's name:
  leases   ZSET lease id -> expiry (ms, Redis time): a slot held; a killed instance's slots
           expire by themselves after `lease` (the target's timeout plus a margin, which
           bounds a request anyway, so leases are not renewed)
  queue    ZSET waiter id -> ticket (INCR of `ticket`): who waits, first come first served
  waitexp  ZSET waiter id -> expiry (ms): a waiter that stops polling (killed) leaves the queue

Acquire is one script (one round trip): purge expired leases and waiters, then take a slot if
one is free and nobody is ahead (a newcomer when the queue is empty; a waiter when its rank is
below the free slots), else join or stay in the queue. With the target's fleet breaker, the
same script asks it once the slot is granted (an open breaker: the slot is not taken). Release
is one script too, but posted: it goes with its turn's batch, off the request's path. Waiters
poll with a short backoff rather than subscribe: a subscription is one more connection per
instance, is lost while a Lambda environment is frozen and on failover, and polling is paid only
when the limit is full (see bench/fleet_bench.py for the hand-over latency).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol

from gateway.fleet.breaker import ALLOW_LUA, FleetBreaker
from gateway.fleet.store import StateStore, StateUnavailable
from gateway.fleet.wire import Script
from gateway.protection.concurrency import LimitExceeded

AGAIN_AFTER = 1.0
"""Seconds after a failed round trip that a release is sent (again): a slot that Redis may
have granted or kept comes back then rather than when its lease expires."""
POLL_FIRST = 0.002
POLL_MAX = 0.025
"""A waiter polls after 2 ms, doubling up to 25 ms: the slowest hand-over of a freed slot."""

_ACQUIRE = (
    ALLOW_LUA
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leases, queue, waitexp, ticket = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local limit, lease_ms, wait_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local me, may_wait = ARGV[4], ARGV[5] == '1'
redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', waitexp, '-inf', now)
for i = 1, #gone do redis.call('ZREM', queue, gone[i]); redis.call('ZREM', waitexp, gone[i]) end
local held = redis.call('ZCARD', leases)
local go = false
if held < limit then
  local rank = redis.call('ZRANK', queue, me)
  if rank then go = rank < limit - held else go = redis.call('ZCARD', queue) == 0 end
end
if go then
  local verdict, pttl = -1, 0
  if #KEYS > 4 then  -- the target's breaker, asked only by a request that got its slot
    verdict, pttl = breaker_allow(KEYS[5], KEYS[6], KEYS[7], tonumber(ARGV[6]), ARGV[7])
    if verdict == 0 then
      redis.call('ZREM', queue, me)
      redis.call('ZREM', waitexp, me)
      return {0, held, verdict, pttl}
    end
  end
  redis.call('ZADD', leases, now + lease_ms, me)
  redis.call('ZREM', queue, me)
  redis.call('ZREM', waitexp, me)
  redis.call('PEXPIRE', leases, lease_ms + wait_ms)
  return {1, held + 1, verdict, 0}
end
if not may_wait then return {0, held, -1, 0} end
if not redis.call('ZSCORE', queue, me) then
  -- a newcomer, or a waiter whose entry expired while it was away: to the back of the queue
  redis.call('ZADD', queue, redis.call('INCR', ticket), me)
  redis.call('PEXPIRE', ticket, 86400000)
end
redis.call('ZADD', waitexp, now + wait_ms, me)
redis.call('PEXPIRE', queue, lease_ms + wait_ms)
redis.call('PEXPIRE', waitexp, lease_ms + wait_ms)
return {0, held, -1, 0}
"""
)

_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""

_IN_FLIGHT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""

_ACQUIRE_SCRIPT, _RELEASE_SCRIPT = Script(_ACQUIRE), Script(_RELEASE)
_NOT_ASKED = -1
"""The acquire's breaker answer when it did not ask the breaker (no slot granted, or none)."""
_IN_FLIGHT_SCRIPT = Script(_IN_FLIGHT)


class LocalLimit(Protocol):
    """gateway.limits.ConcurrencyLimit, as the fallback while Redis is unavailable."""

    @property
    def in_flight(self) -> int: ...

    def slot(self) -> AbstractAsyncContextManager[None]: ...


class FleetConcurrencyLimit:
    """At most `limit` slots held across the fleet; `slot()` as ConcurrencyLimit.slot()."""

    __slots__ = (
        "_keys",
        "_lease_ms",
        "_limit",
        "_local",
        "_queue_timeout",
        "_seen",
        "_store",
        "_wait_ms",
    )

    def __init__(  # noqa: PLR0913 - keyword-only, as the wiring names each one
        self,
        store: StateStore,
        *,
        name: str,
        limit: int,
        queue_timeout: float,
        lease: float,
        local: LocalLimit,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if not queue_timeout >= 0 or not lease > 0:
            raise ValueError("queue_timeout must be >= 0 and lease > 0 seconds")
        self._store = store
        self._limit = limit
        self._queue_timeout = queue_timeout
        self._lease_ms = math.ceil(lease * 1000)
        # A waiter polls at least every POLL_MAX; one missing for a second more has gone.
        self._wait_ms = math.ceil((POLL_MAX + store.timeout + 1.0) * 1000)
        self._local = local
        self._seen = 0
        parts = ("leases", "queue", "waitexp", "ticket")
        self._keys = tuple(store.tagged(f"t:{name}", "conc", part) for part in parts)

    @property
    def limit(self) -> int:
        return self._limit

    def slot(self, breaker: FleetBreaker | None = None) -> FleetSlot:
        """Hold one fleet slot for the body; LimitExceeded after queue_timeout.

        With a `breaker`, the acquire asks it too, once the slot is granted: the slot's
        `breaker_verdict` says whether it let the request through (no slot is held if not).
        With Redis unavailable: on_unavailable=local holds a slot of the local limit instead
        (and the breaker's local twin decides); closed raises StateUnavailable (503) at once.
        """
        return FleetSlot(self, breaker)

    @property
    def in_flight(self) -> int:
        """The fleet's count as this instance last saw it (an acquire answers it for free);
        the local limit's while Redis is unavailable. For an error message."""
        return self._seen if self._store.available else self._local.in_flight

    async def count_in_flight(self) -> int:
        """The fleet's count of held, unexpired slots, read now (for /_gateway/routes)."""
        self._seen = int(await self._store.run(_IN_FLIGHT_SCRIPT, self._keys[:1], ()))
        return self._seen

    async def _acquire(self, lease_id: str, breaker: FleetBreaker | None) -> bool | None:
        """Until granted (None without a breaker, else its verdict) or refused by the breaker."""
        deadline = time.monotonic() + self._queue_timeout
        may_wait = self._queue_timeout > 0
        keys: tuple[str, ...] = self._keys
        args: tuple[object, ...] = (
            self._limit, self._lease_ms, self._wait_ms, lease_id, "1" if may_wait else "0"
        )  # fmt: skip
        if breaker is not None:
            keys, args = keys + breaker.allow_keys, args + breaker.allow_args
        pause = POLL_FIRST
        try:
            while True:
                granted, self._seen, answer, pttl = await self._store.run(
                    _ACQUIRE_SCRIPT, keys, args
                )
                if breaker is not None and answer != _NOT_ASKED:
                    allowed = breaker.answered(int(answer), int(pttl))
                    if granted or not allowed:
                        return allowed
                elif granted:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LimitExceeded(self._limit, self._queue_timeout)
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, POLL_MAX)
        except StateUnavailable as exc:
            if isinstance(exc.__cause__, TimeoutError):
                # It may have run all the same (Redis slow, or this loop busy past the
                # deadline): a lease nobody holds would cut the fleet's capacity until it
                # expired, so it is released once Redis has had time to run it.
                asyncio.get_running_loop().call_later(AGAIN_AFTER, self._release, lease_id)
            raise
        except BaseException as exc:
            # Timed out in the queue, or cancelled (perhaps just after Redis granted the lease).
            if may_wait or not isinstance(exc, LimitExceeded):
                self._release(lease_id)
            raise

    def _release(self, lease_id: str) -> None:
        """Free the slot, or leave the queue, with this turn's batch; sent once more a moment
        later if that failed (a lost one expires with its lease)."""
        self._store.post(_RELEASE_SCRIPT, self._keys[:3], (lease_id,), again_after=AGAIN_AFTER)


_INSTANCE = os.urandom(8).hex()
_SERIAL = itertools.count()


def _lease_id() -> str:
    """Unique across the fleet: this process's random name and a serial (no syscall each)."""
    return f"{_INSTANCE}:{next(_SERIAL)}"


class FleetSlot(AbstractAsyncContextManager[None]):
    __slots__ = ("_breaker", "_fleet", "_lease_id", "_local_slot", "breaker_verdict")

    def __init__(self, fleet: FleetConcurrencyLimit, breaker: FleetBreaker | None) -> None:
        self._fleet = fleet
        self._breaker = breaker
        self._lease_id: str | None = None
        self._local_slot: AbstractAsyncContextManager[None] | None = None
        self.breaker_verdict: bool | None = None
        """Whether the breaker let the request through (no slot is held if not); None when
        the slot was taken without one."""

    async def __aenter__(self) -> None:
        if self._lease_id is not None or self._local_slot is not None:
            raise RuntimeError("this slot is already held; take another with limit.slot()")
        lease_id = _lease_id()
        try:
            verdict = await self._fleet._acquire(lease_id, self._breaker)
        except StateUnavailable:
            if self._fleet._store.settings.on_unavailable == "closed":
                raise
            if self._breaker is not None:
                # Redis just failed: the local twins decide, without a second wait for it.
                self.breaker_verdict = self._breaker.allow_local()
                if not self.breaker_verdict:
                    return
            local_slot = self._fleet._local.slot()
            await local_slot.__aenter__()
            self._local_slot = local_slot
            return
        self.breaker_verdict = verdict
        if verdict is not False:
            self._lease_id = lease_id

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        lease_id, self._lease_id = self._lease_id, None
        local_slot, self._local_slot = self._local_slot, None
        if local_slot is not None:
            await local_slot.__aexit__(exc_type, exc, traceback)
        if lease_id is not None:
            self._fleet._release(lease_id)  # posted: a lost release expires with its lease
