"""What serves requests at one moment: a compiled route table and one upstream per target."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gateway.config import GatewayConfig, HttpTarget, LambdaTarget, Target
from gateway.routing import RouteTable
from gateway.upstreams.base import Upstream
from gateway.upstreams.http import HttpUpstream


@dataclass(frozen=True, slots=True)
class Runtime:
    table: RouteTable
    upstreams: Mapping[str, Upstream]
    loaded_at: float = field(default_factory=time.time)

    @property
    def config(self) -> GatewayConfig:
        return self.table.config

    async def aclose(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.aclose()


def build_upstream(target: Target) -> Upstream:
    match target:
        case HttpTarget():
            return HttpUpstream(target)
        case LambdaTarget():
            # boto3 is imported only where a lambda: target exists (cold start).
            from gateway.upstreams.aws_lambda import LambdaUpstream

            return LambdaUpstream(target)


def build_runtime(config: GatewayConfig) -> Runtime:
    upstreams = {name: build_upstream(target) for name, target in config.targets.items()}
    return Runtime(RouteTable(config), MappingProxyType(upstreams))
