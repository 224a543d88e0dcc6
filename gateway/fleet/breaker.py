"""A breaker the fleet shares: one instance's open breaker opens it for all, probes are shared.

Each instance still counts its own failures in its local breaker (gateway/breaker.py, made
by `local`); when that breaker opens, the fleet learns it through a key that lives `open_for`
(PX). Every `allow()` is one script: open while that key lives; then half-open while the
`half` key lives, where an INCR with expiry hands out `probes` probes to the whole fleet (a
fresh round after another `open_for`, should a probe never report); closed otherwise. A probe's
success counts towards closing it for everyone, its failure opens it again for everyone.

A request costs one round trip (allow), none of its own when the target also has a fleet-wide
`max_concurrency`: the slot's acquire script runs the same check once the slot is granted (so
a request waiting in the queue never takes a half-open probe). `record` touches Redis only
when a local breaker opens or a probe reports. The probe count is per instance in aggregate,
like the local breaker's, so an old request's answer arriving while this instance has a probe
out may stand for it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Protocol

from gateway.fleet.store import StateStore, StateUnavailable
from gateway.fleet.wire import Script

HALF_OPEN_FOR = 3_600_000
"""How long (ms) the fleet stays half-open waiting for probes before it forgets the episode."""

ALLOW_LUA = """
local function breaker_allow(open_key, half_key, probes_key, probes, open_ms)
  local pttl = redis.call('PTTL', open_key)
  if pttl > 0 then return 0, pttl end
  if redis.call('EXISTS', half_key) == 0 then return 1, 0 end
  local n = redis.call('INCR', probes_key)
  if n == 1 then redis.call('PEXPIRE', probes_key, open_ms) end
  if n <= probes then return 2, 0 end
  return 0, redis.call('PTTL', probes_key)
end
"""
"""The breaker's admission as a Lua function: `allow()` runs it alone, and a fleet slot's acquire
runs it once the slot is granted (gateway/fleet/concurrency.py), one script for both."""

_ALLOW = (
    ALLOW_LUA
    + """
local answer, pttl = breaker_allow(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), ARGV[2])
return {answer, pttl}
"""
)

_TRIP = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[1]) + tonumber(ARGV[2]))
redis.call('DEL', KEYS[3], KEYS[4])
return 'open'
"""

_PROBE = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 'closed' end
if redis.call('PTTL', KEYS[1]) > 0 then return 'open' end
if ARGV[1] == '1' then
  local n = redis.call('INCR', KEYS[4])
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[3]) + tonumber(ARGV[4]))
  if n >= tonumber(ARGV[2]) then
    redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
    return 'closed'
  end
  return 'half_open'
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[3]) + tonumber(ARGV[4]))
redis.call('DEL', KEYS[3], KEYS[4])
return 'open'
"""
_ALLOW_SCRIPT, _TRIP_SCRIPT, _PROBE_SCRIPT = Script(_ALLOW), Script(_TRIP), Script(_PROBE)
_CLOSED, _PROBE_GRANTED = 1, 2


class LocalBreaker(Protocol):
    """gateway.breaker.CircuitBreaker: counts this instance's failures, and is the fallback."""

    @property
    def state(self) -> str: ...

    def allow(self) -> bool: ...

    def record(self, success: bool) -> None: ...

    def retry_after(self) -> float: ...


class Policy(Protocol):
    """gateway.breaker.BreakerPolicy: the parts the fleet shares."""

    @property
    def open_for(self) -> float: ...

    @property
    def half_open_probes(self) -> int: ...

    def failed(self, status: int) -> bool: ...


class FleetBreaker:
    """`allow()` / `record(success)` / `retry_after()` as CircuitBreaker, shared by the fleet."""

    __slots__ = (
        "_keys",
        "_local",
        "_make_local",
        "_open_ms",
        "_policy",
        "_probes",
        "_probes_out",
        "_retry_at",
        "_state",
        "_store",
        "_used_local",
        "name",
    )

    def __init__(
        self,
        store: StateStore,
        *,
        name: str,
        policy: Policy,
        local: Callable[[], LocalBreaker],
    ) -> None:
        self.name = name
        self._store = store
        self._policy = policy
        self._open_ms = max(1, round(policy.open_for * 1000))
        self._probes = policy.half_open_probes
        self._make_local = local
        self._local = local()
        parts = ("open", "half", "probes", "ok")
        # Tagged by the target, as its fleet limit's keys: the acquire script uses both.
        self._keys = tuple(store.tagged(f"t:{name}", "brk", part) for part in parts)
        self._probes_out = 0
        self._retry_at = 0.0
        self._state = "closed"
        self._used_local = False

    @property
    def state(self) -> str:
        """The fleet's state as of the last `allow()` (the local one's while Redis was away)."""
        return self._local.state if self._used_local else self._state

    @property
    def allow_keys(self) -> tuple[str, ...]:
        """The keys and arguments of `breaker_allow` (ALLOW_LUA), for a script that folds it in."""
        return self._keys[:3]

    @property
    def allow_args(self) -> tuple[int, int]:
        return self._probes, self._open_ms

    async def allow(self) -> bool:
        try:
            answer, pttl = await self._store.run(_ALLOW_SCRIPT, self.allow_keys, self.allow_args)
        except StateUnavailable:
            if self._store.settings.on_unavailable == "closed":
                raise
            return self.allow_local()
        return self.answered(int(answer), int(pttl))

    def allow_local(self) -> bool:
        """Redis is unavailable and on_unavailable is local: this instance's breaker decides."""
        self._used_local = True
        return self._local.allow()

    def answered(self, answer: int, pttl: int) -> bool:
        """Whether to go ahead, from `breaker_allow`'s answer (run by `allow` or a fold)."""
        if self._used_local or self._local.state != "closed":
            self._used_local = False
            self._local = self._make_local()  # the fleet governs again: count from zero
        if answer == _CLOSED:
            self._state = "closed"
            return True
        if answer == _PROBE_GRANTED:
            self._state = "half_open"
            self._probes_out += 1
            return True
        self._state = "open"
        self._retry_at = time.monotonic() + pttl / 1000
        return False

    async def record_status(self, status: int) -> None:
        """Record an upstream's answer, a failure or not as the policy's `count` says."""
        await self.record(not self._policy.failed(status))

    async def record(self, success: bool) -> None:
        if self._probes_out > 0 and not self._used_local:
            self._probes_out -= 1
            with contextlib.suppress(StateUnavailable):  # a lost probe: another round follows
                args = ("1" if success else "0", self._probes, self._open_ms, HALF_OPEN_FOR)
                self._state = _text(await self._store.run(_PROBE_SCRIPT, self._keys, args))
            return
        self._local.record(success)
        if self._local.state != "open" or self._used_local:
            return
        with contextlib.suppress(StateUnavailable):  # the local breaker stays open meanwhile
            await self._store.run(_TRIP_SCRIPT, self._keys, (self._open_ms, HALF_OPEN_FOR))
            self._state = "open"
            self._retry_at = time.monotonic() + self._open_ms / 1000
            self._local = self._make_local()

    def retry_after(self) -> float:
        """Seconds until `allow()` could next admit a request (0.0 if it would now)."""
        if self._used_local:
            return self._local.retry_after()
        if self._state != "open":
            return 0.0
        return max(0.0, self._retry_at - time.monotonic())


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
