"""Swapping the route table while serving, without dropping a request.

A new table is built whole, checked, and swapped in with one reference assignment: a
request in flight keeps the Runtime it started with, new requests get the new one.
Upstreams whose target did not change are carried over with their connection pools; the
ones retired are closed only after a grace period, once requests still using them are done.
A broken new config is refused, logged, and the last good table keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Protocol

from gateway.config.load import parse_config
from gateway.config.model import ConfigError, GatewayConfig
from gateway.config.store import ConfigStore
from gateway.protection.breaker import OnChange
from gateway.runtime import Runtime, build_runtime

logger = logging.getLogger("gateway.reload")

RETIRE_GRACE_SECONDS = 60.0
RELOAD_SWITCH_INTERVAL = 0.0005


class RuntimeHolder:
    """The one reference a reload swaps; each request reads it once and keeps what it got."""

    __slots__ = ("current",)

    def __init__(self, runtime: Runtime) -> None:
        self.current = runtime

    def get(self) -> Runtime:
        return self.current


def rebuild(
    current: Runtime, config: GatewayConfig, on_breaker_change: OnChange | None = None
) -> tuple[Runtime, list[Closeable]]:
    """A Runtime for `config` reusing `current`'s unchanged targets; and what it retires."""
    runtime = build_runtime(config, on_breaker_change, reuse=current)
    kept = {id(u) for u in runtime.upstreams.values()}
    retired: list[Closeable] = [u for u in current.upstreams.values() if id(u) not in kept]
    if current.store is not None and current.store is not runtime.store:
        retired.append(current.store)
    return runtime, [*retired, *current.closeables]


class Closeable(Protocol):
    async def aclose(self) -> None: ...


@dataclass
class Reloader:
    source: ConfigStore
    holder: RuntimeHolder
    ttl: float
    last_error: str | None = None
    last_check: float = field(default_factory=time.monotonic)
    on_breaker_change: OnChange | None = None
    _refused: str | None = None
    _retiring: list[Closeable] = field(default_factory=list)
    _closing: set[asyncio.Future[None]] = field(default_factory=set)

    def check(self) -> list[Closeable]:
        """Read the source; swap in a changed, valid table. Returns upstreams to retire."""
        self.last_check = time.monotonic()
        try:
            text = self.source.read_if_changed()
        except ConfigError as exc:
            return self._refuse(str(exc), None)
        if text is None:
            return []
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest == self._refused:
            return []
        try:
            config = parse_config(text, self.source.description)
        except ConfigError as exc:
            return self._refuse(str(exc), digest)
        if config.version == self.holder.current.config.version:
            self.last_error = self._refused = None  # the file is back to the table in use
            return []
        return self._swap(config, digest)

    def _swap(self, config: GatewayConfig, digest: str) -> list[Closeable]:
        warn_if_weaker(self.holder.current.config, config, self.source.description)
        try:
            runtime, retired = rebuild(self.holder.current, config, self.on_breaker_change)
        except Exception as exc:  # the loader's checks should make this unreachable
            logger.exception("building the table from %s failed", self.source.description)
            return self._refuse(f"cannot build the table: {type(exc).__name__}", digest)
        self.holder.current = runtime
        self.last_error = self._refused = None
        logger.warning(
            "route table %s loaded from %s (%d routes)",
            config.version,
            self.source.description,
            len(config.routes),
        )
        return retired

    def _refuse(self, reason: str, digest: str | None) -> list[Closeable]:
        self._refused = digest
        self.last_error = reason
        logger.error(
            "config %s refused; still serving %s:\n%s",
            self.source.description,
            self.holder.current.config.version,
            reason,
        )
        return []

    def due(self) -> bool:
        return time.monotonic() - self.last_check >= self.ttl

    async def check_async(self) -> None:
        """One check off the event loop (remote reads block), retiring what it replaced."""
        # A large table parses for seconds in the worker thread, holding the GIL between
        # forced switches; a shorter switch interval meanwhile hands it back to the event
        # loop sooner, so requests served during a reload wait ~0.5 ms, not ~5 ms, per turn.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, RELOAD_SWITCH_INTERVAL))
        try:
            retired = await asyncio.to_thread(self.check)
        finally:
            sys.setswitchinterval(interval)
        if retired:
            self._retiring.extend(retired)
            asyncio.get_running_loop().call_later(RETIRE_GRACE_SECONDS, self._close_later, retired)

    def _close_later(self, upstreams: list[Closeable]) -> None:
        for upstream in upstreams:
            if upstream in self._retiring:
                self._retiring.remove(upstream)
        self._closing.add(asyncio.ensure_future(close_all(upstreams)))

    async def aclose(self) -> None:
        """At shutdown: close what is still retiring."""
        retiring, self._retiring = self._retiring, []
        await close_all(retiring)
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def watch(self) -> None:
        """Check every `ttl` seconds, and at once on SIGHUP, until cancelled."""
        wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            # Only the main thread may take signals (tests run servers in threads).
            loop.add_signal_handler(signal.SIGHUP, wake.set)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=self.ttl)
                wake.clear()
                try:
                    await self.check_async()
                except Exception:
                    logger.exception("config reload failed; the last good table keeps serving")
        finally:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(signal.SIGHUP)


def warn_if_weaker(old: GatewayConfig, new: GatewayConfig, description: str) -> None:
    """Say loudly when a reload drops routes or drops or changes a route's `auth`: a table
    cut short (a file read mid-write, a bad merge) would otherwise open protected paths."""
    before = {route.name: route for route in old.routes}
    after = {route.name: route for route in new.routes}
    dropped = sorted(set(before) - set(after))
    if dropped:
        logger.warning(
            "reload of %s drops %d route(s): %s", description, len(dropped), ", ".join(dropped)
        )
    weaker = sorted(
        name
        for name, route in before.items()
        if route.auth is not None and name in after and after[name].auth != route.auth
    )
    if weaker:
        logger.warning(
            "reload of %s removes or changes auth on route(s): %s", description, ", ".join(weaker)
        )


async def close_all(upstreams: list[Closeable]) -> None:
    for upstream in upstreams:
        try:
            await upstream.aclose()
        except Exception:
            logger.exception("closing retired %r failed", upstream)
