"""What serves requests at one moment: the compiled route table, and for each target its
upstream and protection, for each route its admission checks."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.admission.admin_guard import AdminGuard
from gateway.admission.guard import RouteGuard
from gateway.asgi import Scope
from gateway.config.model import GatewayConfig, HttpTarget, LambdaTarget, Target, base_dir
from gateway.fleet.store import StateObserver, StateStore
from gateway.normalize import Network, forwarded_for, parse_trusted
from gateway.protection.breaker import OnChange
from gateway.protection.guard import TargetGuard
from gateway.routing import RouteTable
from gateway.telemetry.tracing import Tracing
from gateway.upstreams.base import Upstream
from gateway.upstreams.http import HttpUpstream
from gateway.upstreams.traced import TracedUpstream


@dataclass(frozen=True, slots=True)
class Runtime:
    table: RouteTable
    upstreams: Mapping[str, Upstream]
    guards: Mapping[str, TargetGuard]
    admissions: Mapping[str, RouteGuard]
    trusted: tuple[Network, ...] = ()
    admin: AdminGuard = AdminGuard()
    closeables: tuple[Any, ...] = ()
    loaded_at: float = field(default_factory=time.time)
    tracing: Tracing | None = None
    """When tracing is on: each upstream is wrapped in a client span (kept across reloads)."""
    store: StateStore | None = None
    """The fleet's shared state (`state:`), kept across reloads while its settings hold."""
    state_observer: StateObserver | None = None
    """Told of the store's calls (multi-worker metrics), kept across reloads."""

    @property
    def config(self) -> GatewayConfig:
        return self.table.config

    def client_chain(self, scope: Scope) -> tuple[str | None, bytes]:
        """(the client, the X-Forwarded-For to send upstream): only what trusted proxies
        vouch for, then the peer; without trusted proxies, the peer alone."""
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        if not self.trusted:
            return peer, peer.encode("latin-1", "backslashreplace") if peer else b""
        return forwarded_for(scope["headers"], peer, self.trusted)

    def pair(self, target: str) -> tuple[Upstream, TargetGuard]:
        return self.upstreams[target], self.guards[target]

    async def aclose(self) -> None:
        for item in (*self.upstreams.values(), *self.closeables):
            await item.aclose()
        if self.store is not None:
            await self.store.aclose()


def state_store(
    config: GatewayConfig, reuse: Runtime | None, observer: StateObserver | None = None
) -> StateStore | None:
    """The store `config.state` names: the one in use when its settings are unchanged."""
    if config.state is None:
        return None
    if reuse is not None and reuse.store is not None and reuse.store.settings == config.state:
        return reuse.store
    return StateStore(config.state, observer=observer)


def build_upstream(target: Target) -> Upstream:
    match target:
        case HttpTarget():
            return HttpUpstream(target)
        case LambdaTarget():
            # cold start: boto3 only where a lambda: target exists
            from gateway.upstreams.aws_lambda import LambdaUpstream

            return LambdaUpstream(target)


def build_runtime(
    config: GatewayConfig,
    on_breaker_change: OnChange | None = None,
    reuse: Runtime | None = None,
    tracing: Tracing | None = None,
    state_observer: StateObserver | None = None,
) -> Runtime:
    """The runtime for `config`; targets unchanged since `reuse` keep its upstream (and
    connection pool) and protection state."""
    if reuse is not None:
        tracing = tracing or reuse.tracing
        state_observer = state_observer or reuse.state_observer
    if tracing is not None and not tracing.enabled:
        tracing = None
    store = state_store(config, reuse, state_observer)
    same_store = reuse is not None and reuse.store is store
    upstreams: dict[str, Upstream] = {}
    guards: dict[str, TargetGuard] = {}
    for name, target in config.targets.items():
        if reuse is not None and reuse.config.targets.get(name) == target:
            upstreams[name], guards[name] = reuse.pair(name)
            if not same_store:  # local <-> fleet, or another Redis: new protection state
                guards[name] = TargetGuard.build(target, on_breaker_change, store)
        else:
            upstream = build_upstream(target)
            upstreams[name] = TracedUpstream(upstream, tracing) if tracing else upstream
            guards[name] = TargetGuard.build(target, on_breaker_change, store)
    jwks: dict[str, Any] = {}
    files = base_dir(config.source)
    admissions = {
        route.name: RouteGuard.build(route, jwks, files, store) for route in config.routes
    }
    admin = AdminGuard.build(config.admin, jwks, files)
    if reuse is not None and same_store:
        _carry_over(reuse, config, admissions)
    elif reuse is not None:
        _carry_over_failures(reuse, config, admissions)
        if reuse.config.admin == config.admin:
            admin = admin.keeping(reuse.admin)
    return Runtime(
        RouteTable(config),
        MappingProxyType(upstreams),
        MappingProxyType(guards),
        MappingProxyType(admissions),
        parse_trusted(config.trusted_proxies),
        admin,
        tuple(jwks.values()),
        tracing=tracing,
        store=store,
        state_observer=state_observer,
    )


def _carry_over(old: Runtime, config: GatewayConfig, admissions: dict[str, RouteGuard]) -> None:
    """Rate buckets and failure counts of routes whose settings did not change survive."""
    before = {route.name: route for route in old.config.routes}
    for route in config.routes:
        old_route = before.get(route.name)
        if old_route is not None and route.name in old.admissions:
            admissions[route.name].carry_over(old.admissions[route.name], old_route, route)


def _carry_over_failures(
    old: Runtime, config: GatewayConfig, admissions: dict[str, RouteGuard]
) -> None:
    """The store changed: rate state starts afresh in the new place; failure counts stay."""
    before = {route.name: route for route in old.config.routes}
    for route in config.routes:
        old_route, old_guard = before.get(route.name), old.admissions.get(route.name)
        if old_route is not None and old_guard is not None:
            guard = admissions[route.name]
            fresh_rate, fresh_failures = guard.rate, guard.failures
            guard.carry_over(old_guard, old_route, route)
            guard.rate = fresh_rate
            if guard.failures is not None and fresh_failures is not None:
                guard.failures = guard.failures.moved_to(fresh_failures)
