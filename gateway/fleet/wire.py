"""The store's wire: its redis-py client, the connections it keeps, and one pipeline per batch.

A batch goes out as one write on one pooled connection of redis-py's, below its Pipeline
object, whose bookkeeping per batch (module imports, observability, reply callbacks) cost
~25% more CPU per call (bench: lone 138 vs 115 µs, batch of 16 20 vs 16 µs per command). The
connection is kept between batches rather than handed back, and the commands are packed
here. Replies come raw: the scripts answer numbers and strings, the plain commands are run
for their effect or read raw (HGETALL as a flat list).

Scripts run by SHA (EVALSHA). One this Redis has not seen from us is loaded in the same
pipeline, ahead of its first use; one Redis forgot (a restart, a failover) is loaded again
and its calls run once more.
"""

from __future__ import annotations

import hashlib
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, ResponseError

from gateway.config.model import StateSettings

MAX_CONNECTIONS = 64
"""Per process: more concurrent Redis calls than this queue for a connection."""


class Script:
    """A Lua script, run by its SHA."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # what SCRIPT LOAD would answer


Command: TypeAlias = tuple[Any, ...]
"""One entry of a batch: (Script, keys, args) or (None, *command)."""


class Wire:
    """One client's connections, sending a batch of commands as one pipeline."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._idle: list[AbstractConnection] = []  # taken from the pool, free between batches
        self._loaded: set[str] = set()  # the SHAs of the scripts this Redis has from us

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await self.client.connection_pool.release(connection)
        await self.client.aclose()

    async def execute(self, commands: list[Command]) -> list[Any]:
        # A script this Redis has not seen from us is loaded in the same pipeline, ahead of
        # its first use: no round trip more, and the batch runs in the order it was made.
        fresh = {command[0].sha: command[0] for command in commands if command[0] is not None}
        loads: list[Command] = [
            (None, "SCRIPT", "LOAD", script.source)
            for sha, script in fresh.items()
            if sha not in self._loaded
        ]
        answers = await self._pipeline(loads + commands)
        results = answers[len(loads) :]
        self._loaded.update(
            answer.decode() for answer in answers[: len(loads)] if isinstance(answer, bytes)
        )
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:
            # Redis forgot them (a restart, a failover, SCRIPT FLUSH): load them and run those
            # again. Only here may a call run after one made later in its batch.
            self._loaded.clear()
            for source in {commands[i][0].source for i in missing}:
                await self.client.script_load(source)
            again = await self._pipeline([commands[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return results

    async def _pipeline(self, commands: list[Command]) -> list[Any]:
        """Every command in one write, every reply read back: one round trip.

        On one pooled connection of redis-py's, below its Pipeline object, whose bookkeeping
        per batch (module imports, observability, reply callbacks) cost ~25% more CPU per call
        (bench: lone 138 vs 115 µs, batch of 16 20 vs 16 µs per command). Replies come raw:
        the scripts answer numbers and strings, the plain commands are run for their effect
        or read raw (HGETALL as a flat list)."""
        pool = self.client.connection_pool
        connection = self._idle.pop() if self._idle else await _taken(pool)
        try:
            await connection.send_packed_command(
                b"".join([packed_command(command) for command in commands]), check_health=False
            )
            results: list[Any] = []
            for _ in commands:
                try:
                    results.append(await connection.read_response())
                except ResponseError as error:  # this command's own error (NOSCRIPT too)
                    results.append(error)
        except BaseException:
            await pool.release(connection)  # disconnected by redis-py on the way out
            raise
        # Kept rather than given back: the pool's lock and timer per batch cost more than the
        # call itself at load. Still the pool's (counted in max_connections) until close().
        self._idle.append(connection)
        return results


async def _taken(pool: ConnectionPool) -> AbstractConnection:
    connection: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
    return connection


def packed_command(command: Command) -> bytes:
    """The command in RESP, as redis-py's `pack_command` writes it for these argument types
    (str as UTF-8, int and float by `repr`), at a sixth of its cost (its encoder's checks
    per argument were 6% of a proxied request's CPU)."""
    script, *rest = command
    if script is None:
        words = rest
    else:
        keys, args = rest
        words = ["EVALSHA", script.sha, len(keys), *keys, *args]
    parts = [b"*%d\r\n" % len(words)]
    for word in words:
        if isinstance(word, bytes):
            data = word
        elif isinstance(word, str):
            data = word.encode()
        elif isinstance(word, int | float) and not isinstance(word, bool):
            data = repr(word).encode()
        else:
            raise TypeError(f"not a Redis argument: {type(word).__name__}")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def client_for(settings: StateSettings) -> aioredis.Redis:
    # A blocking pool: past max_connections a call waits (within its deadline) for a connection
    # rather than failing at once with "Too many connections" and falling back for nothing.
    # No socket_timeout: the call's one deadline bounds every read (a read it cancels drops its
    # connection), and a timer per reply cost ~6% of a proxied request's CPU (py-spy).
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis,
        max_connections=MAX_CONNECTIONS,
        timeout=None,
        socket_timeout=None,  # redis-py 8 would set 5 s
        socket_connect_timeout=settings.timeout,
        retry=Retry(NoBackoff(), 0),
    )
    return aioredis.Redis.from_pool(pool)  # owns the pool: close() disconnects it
