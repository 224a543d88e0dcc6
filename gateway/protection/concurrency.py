"""A cap on requests in flight, with a short first-come-first-served queue in front of it.

Not `asyncio.Semaphore` under `wait_for`: there, a waiter woken and cancelled in the same turn
of the loop can lose a slot or let a later arrival take it first. Here a released slot is handed
straight to the oldest waiter's future (`in_flight` never dips, so nobody can barge in), and a
waiter that finds it was handed a slot just as it was cancelled passes it on before leaving. A
queue timeout is a timer that answers the future, not a cancellation of the task.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from contextlib import AbstractAsyncContextManager
from types import TracebackType


class LimitExceeded(Exception):
    """No slot came free within the queue timeout; try again in `retry_after` seconds."""

    def __init__(self, limit: int, queue_timeout: float) -> None:
        super().__init__(f"{limit} requests already in flight; none finished in {queue_timeout}s")
        self.retry_after: int = max(1, math.ceil(queue_timeout))


class ConcurrencyLimit:
    __slots__ = ("_in_flight", "_limit", "_queue_timeout", "_waiters")

    def __init__(self, limit: int, queue_timeout: float) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if not queue_timeout >= 0:
            raise ValueError(f"queue_timeout must be seconds >= 0, not {queue_timeout!r}")
        self._limit = limit
        self._queue_timeout = queue_timeout
        self._in_flight = 0
        # Each waiter's future is answered True (a slot is now yours) or False (timed out).
        self._waiters: deque[asyncio.Future[bool]] = deque()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def slot(self) -> AbstractAsyncContextManager[None]:
        """Hold one slot for the body; raise LimitExceeded if none frees up in time.

        Its exit frees the slot at most once, so it may be called again (say, by both an error
        path and a response's close) without handing out a slot that is not there.
        """
        return _Slot(self)

    async def _acquire(self) -> None:
        if self._in_flight < self._limit and not self._waiters:
            self._in_flight += 1
            return
        if self._queue_timeout == 0:
            raise LimitExceeded(self._limit, self._queue_timeout)
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(granted)
        timer = loop.call_later(self._queue_timeout, self._expire, granted)
        try:
            got_slot = await granted
        except asyncio.CancelledError:
            self._leave(granted)
            raise
        finally:
            timer.cancel()
        if not got_slot:
            raise LimitExceeded(self._limit, self._queue_timeout)

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # skip one cancelled but not yet run: it cleans up after itself
                waiter.set_result(True)  # the slot changes hands; in_flight stays the same
                return
        self._in_flight -= 1

    def _expire(self, granted: asyncio.Future[bool]) -> None:
        if not granted.done():
            self._waiters.remove(granted)
            granted.set_result(False)

    def _leave(self, granted: asyncio.Future[bool]) -> None:
        """A cancelled waiter: give back a slot handed over in the meantime, or quit the queue."""
        if granted.cancelled():
            if granted in self._waiters:
                self._waiters.remove(granted)
        elif granted.result():
            self._release()


class _Slot(AbstractAsyncContextManager[None]):
    __slots__ = ("_held", "_limit")

    def __init__(self, limit: ConcurrencyLimit) -> None:
        self._limit = limit
        self._held = False

    async def __aenter__(self) -> None:
        if self._held:
            raise RuntimeError("this slot is already held; take another with limit.slot()")
        await self._limit._acquire()
        self._held = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._held:
            self._held = False
            self._limit._release()
