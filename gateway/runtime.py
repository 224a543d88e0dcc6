"""What serves requests at one moment: the compiled route table, and for each target its
upstream and protection, for each route its admission checks."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.admission import RouteGuard
from gateway.breaker import OnChange
from gateway.config import GatewayConfig, HttpTarget, LambdaTarget, Target, base_dir
from gateway.forwarding import TargetGuard
from gateway.normalize import Network, parse_trusted
from gateway.routing import RouteTable
from gateway.upstreams.base import Upstream
from gateway.upstreams.http import HttpUpstream


@dataclass(frozen=True, slots=True)
class Runtime:
    table: RouteTable
    upstreams: Mapping[str, Upstream]
    guards: Mapping[str, TargetGuard]
    admissions: Mapping[str, RouteGuard]
    trusted: tuple[Network, ...] = ()
    closeables: tuple[Any, ...] = ()
    loaded_at: float = field(default_factory=time.time)

    @property
    def config(self) -> GatewayConfig:
        return self.table.config

    def pair(self, target: str) -> tuple[Upstream, TargetGuard]:
        return self.upstreams[target], self.guards[target]

    async def aclose(self) -> None:
        for item in (*self.upstreams.values(), *self.closeables):
            await item.aclose()


def build_upstream(target: Target) -> Upstream:
    match target:
        case HttpTarget():
            return HttpUpstream(target)
        case LambdaTarget():
            # boto3 is imported only where a lambda: target exists (cold start).
            from gateway.upstreams.aws_lambda import LambdaUpstream

            return LambdaUpstream(target)


def build_runtime(
    config: GatewayConfig,
    on_breaker_change: OnChange | None = None,
    reuse: Runtime | None = None,
) -> Runtime:
    """The runtime for `config`; targets unchanged since `reuse` keep its upstream (and
    connection pool) and protection state."""
    upstreams: dict[str, Upstream] = {}
    guards: dict[str, TargetGuard] = {}
    for name, target in config.targets.items():
        if reuse is not None and reuse.config.targets.get(name) == target:
            upstreams[name], guards[name] = reuse.pair(name)
        else:
            upstreams[name] = build_upstream(target)
            guards[name] = TargetGuard.build(target, on_breaker_change)
    jwks: dict[str, Any] = {}
    files = base_dir(config.source)
    admissions = {route.name: RouteGuard.build(route, jwks, files) for route in config.routes}
    return Runtime(
        RouteTable(config),
        MappingProxyType(upstreams),
        MappingProxyType(guards),
        MappingProxyType(admissions),
        parse_trusted(config.trusted_proxies),
        tuple(jwks.values()),
    )
