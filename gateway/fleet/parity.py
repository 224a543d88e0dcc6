"""The parity counters fleet-wide: `parity.counters.ParityStore` on the shared Redis.

One hash per route per minute, `{prefix}parity:{route}:{minute}`, expiring after the
retention, and one since-reset hash `{prefix}parity:{route}:total`; fields as the counters
module describes (`o:compared`, `r:{path}`, `k:{path}:{kind}`, `n:{path}`, `s:{paths}`,
`noise_pairs`), each raised by one script call (HINCRBY on both hashes, EXPIRE on the minute).

The corridor records from inside a copy's task, so a record is written by a task of its own
(never awaited by a client; a Redis that does not answer within the store's timeout loses that
record and counts in `gateway_state_unavailable_total`). `snapshot` is synchronous, as the
report calls it: it answers from what `load` last read, which the admin API awaits first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.fleet.store import StateStore, StateUnavailable
from gateway.fleet.wire import Script
from gateway.parity.compare import Kind, Outcome
from gateway.parity.counters import BUCKET_SECONDS, MAX_PATHS, Snapshot, Tally

RAISE = Script(
    """
for i = 2, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""
)
MAX_WRITES = 256
"""Writes in flight per process; past it a record is lost (Redis is too slow to keep up)."""
MAX_SCANS = 100


class RedisParityStore:
    def __init__(self, store: StateStore, retention: float = 3600.0) -> None:
        self.store = store
        self.retention = retention
        self._cache: dict[str, Snapshot] = {}
        self._writes: set[asyncio.Task[None]] = set()

    def _key(self, route: str, part: str) -> str:
        return self.store.tagged(f"p:{route}", "parity", part)

    def record_pair(
        self, route: str, outcome: Outcome, paths: Mapping[str, Kind], now: float
    ) -> None:
        fields: Counter[str] = Counter({f"o:{outcome}": 1})
        if paths:
            fields["o:mismatched"] += 1
            fields["s:" + "\n".join(sorted(paths))] += 1
            for path, kind in paths.items():
                fields[f"r:{path}"] += 1
                fields[f"k:{path}:{kind}"] += 1
        self._write(route, fields, now)

    def record_noise(self, route: str, paths: Iterable[str], now: float) -> None:
        fields: Counter[str] = Counter({"noise_pairs": 1})
        for path in set(paths):
            fields[f"n:{path}"] += 1
        self._write(route, fields, now)

    def snapshot(self, route: str, window: float, now: float) -> Snapshot:
        return self._cache.get(route, Snapshot(Tally(), Tally()))

    def reset(self, route: str) -> None:
        """Delete the route's total and minutes (found with a bounded SCAN)."""
        self._cache.pop(route, None)
        self._spawn(self._delete(self._key(route, "*")))

    async def _delete(self, pattern: str) -> None:
        cursor: Any = 0
        for _ in range(MAX_SCANS):
            cursor, keys = await self.store.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            if keys:
                await self.store.call("DEL", *keys)
            if int(cursor) == 0:
                return

    def routes(self) -> list[str]:
        return sorted(self._cache)

    async def load(self, route: str, window: float, now: float) -> Snapshot:
        """Read the window's minutes and the total from Redis; `snapshot` answers with it."""
        last = int(now // BUCKET_SECONDS)
        count = max(1, min(int(window // BUCKET_SECONDS), self._minutes()))
        keys = [self._key(route, str(minute)) for minute in range(last - count + 1, last + 1)]
        keys.append(self._key(route, "total"))
        # Called in one turn of the loop, so sent in one batch: one round trip for them all.
        *minutes, whole = await asyncio.gather(*(self.store.call("HGETALL", key) for key in keys))
        summed = Tally()
        for raw in minutes:
            summed.merge(_tally(raw))
        total = _tally(whole)
        self._cache[route] = Snapshot(summed, total)
        return self._cache[route]

    async def flush(self) -> None:
        """Wait for the writes in flight (tests, and shutdown)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def _write(self, route: str, fields: Counter[str], now: float) -> None:
        minute = int(now // BUCKET_SECONDS)
        keys = [self._key(route, str(minute)), self._key(route, "total")]
        args: list[Any] = [int(self.retention) + BUCKET_SECONDS]
        for name, count in fields.items():
            args += [name, count]
        self._spawn(self.store.run(RAISE, keys, args))

    def _spawn(self, call: Any) -> None:
        if len(self._writes) >= MAX_WRITES:
            call.close()
            return
        task = asyncio.ensure_future(_quietly(call))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def _minutes(self) -> int:
        return int(self.retention // BUCKET_SECONDS)


async def _quietly(call: Any) -> None:
    # counted by the store; a lost record only makes the score rest on fewer pairs
    with contextlib.suppress(StateUnavailable):
        await call


def _tally(raw: Any) -> Tally:
    """A Tally from one hash's fields (bytes or str, as the client decodes)."""
    tally = Tally()
    items = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    for name, value in items:
        field = name.decode() if isinstance(name, bytes) else str(name)
        count = int(value)
        kind, _, rest = field.partition(":")
        if field == "noise_pairs":
            tally.noise_pairs += count
        elif kind == "o":
            tally.outcomes[rest] += count
        elif kind == "r" and (rest in tally.raw or len(tally.raw) < MAX_PATHS):
            tally.raw[rest] += count
        elif kind == "k":
            path, _, which = rest.rpartition(":")
            tally.kinds[(path, which)] += count
        elif kind == "n" and (rest in tally.noise or len(tally.noise) < MAX_PATHS):
            tally.noise[rest] += count
        elif kind == "s":
            tally.pair_sets[frozenset(rest.split("\n"))] += count
    return tally
