"""A client span around any upstream, and the trace headers naming it as the parent.

Wrapped around each upstream when tracing is on (`gateway.runtime`); with tracing off the
upstreams are used bare and nothing here runs. The parent is the request's server span,
which `Telemetry.begin` made current for the request's task.
"""

from __future__ import annotations

from gateway.errors import GatewayError
from gateway.telemetry.tracing import Tracing
from gateway.upstreams.base import Upstream, UpstreamRequest, UpstreamResponse


class TracedUpstream:
    """`upstream`, each call inside a client span whose context the request carries."""

    __slots__ = ("_tracing", "inner", "kind", "name")

    def __init__(self, inner: Upstream, tracing: Tracing) -> None:
        self.inner = inner
        self.name = inner.name
        self.kind = inner.kind
        self._tracing = tracing

    async def forward(self, request: UpstreamRequest) -> UpstreamResponse:
        span = self._tracing.start_client(
            request.method,
            {
                "http.request.method": request.method,
                "url.path": request.path.decode("latin-1"),
                "gateway.route": request.route,
                "gateway.target": self.name,
                "gateway.upstream.kind": self.kind,
            },
        )
        try:
            reply = await self.inner.forward(
                request.with_headers(self._tracing.inject(span, request.headers))
            )
        except GatewayError as error:
            self._tracing.end_failed(span, error.code)
            raise
        except BaseException:
            span.end()
            raise
        self._tracing.end(span, reply.status)
        return reply

    async def aclose(self) -> None:
        await self.inner.aclose()
