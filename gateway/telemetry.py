"""What the gateway records of each request: one trace, one log line, one metrics sample.

`Telemetry` is built once per app; `Exchange` is one request's record, created by the proxy
and passed along in arguments (never kept on a shared object).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import Span
from opentelemetry.trace import Status, StatusCode

from gateway.access_log import AccessLog, Redactor
from gateway.asgi import Scope
from gateway.config import Route
from gateway.errors import GatewayError
from gateway.headers import HeaderView
from gateway.metrics import Metrics
from gateway.tracing import Tracing, inject
from gateway.upstreams.base import UpstreamRequest


@dataclass(slots=True)
class Telemetry:
    tracing: Tracing
    metrics: Metrics
    access_log: AccessLog | None
    redactor: Redactor = field(default_factory=Redactor)

    @classmethod
    def from_env(cls) -> Telemetry:
        return cls(Tracing.from_env(), Metrics(), AccessLog.from_env(), Redactor.from_env())

    def begin(self, scope: Scope, headers: HeaderView) -> Exchange:
        exchange = Exchange(self, scope, time.perf_counter())
        if self.tracing.enabled:
            exchange.span = self.tracing.start_server(
                scope["method"], headers, self._server_attributes(scope, headers)
            )
        return exchange

    def _server_attributes(self, scope: Scope, headers: HeaderView) -> dict[str, Any]:
        client = scope.get("client")
        attributes: dict[str, Any] = {
            "http.request.method": scope["method"],
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        query = self.redactor.query(scope.get("query_string", b""))
        if query:
            attributes["url.query"] = query
        if client:
            attributes["client.address"] = client[0]
        agent = headers.get("user-agent")
        if agent:
            attributes["user_agent.original"] = agent
        return attributes

    def flush(self) -> bool:
        return self.tracing.flush()


class Exchange:
    """One request as the gateway saw it, from arrival to the last byte of its answer."""

    __slots__ = (
        "client_span",
        "fallback",
        "retry",
        "route",
        "scope",
        "span",
        "started",
        "status",
        "sticky",
        "target",
        "telemetry",
        "upstream_ms",
        "upstream_started",
        "weight",
    )

    def __init__(self, telemetry: Telemetry, scope: Scope, started: float) -> None:
        self.telemetry = telemetry
        self.scope = scope
        self.started = started
        self.span: Span | None = None
        self.client_span: Span | None = None
        self.route: str | None = None
        self.target: str | None = None
        self.weight: float | None = None
        self.sticky = False
        self.status = 0
        self.upstream_ms: float | None = None
        self.upstream_started = 0.0
        self.fallback = False
        self.retry = False

    def routed(self, route: Route, target: str, sticky: bool) -> None:
        self.route, self.target, self.sticky = route.name, target, sticky
        self.weight = dict(route.split).get(target)
        if self.span is not None:
            self.span.update_name(f"{self.scope['method']} {route.name}")
            self.span.set_attributes(
                {
                    "http.route": route.path,
                    "gateway.route": route.name,
                    "gateway.target": target,
                    "gateway.weight": self.weight or 0.0,
                    "gateway.sticky": sticky,
                }
            )

    def calling(self, request: UpstreamRequest, upstream_kind: str) -> UpstreamRequest:
        """Start the upstream call: a client span, and trace headers naming it as parent."""
        self.upstream_started = time.perf_counter()
        if self.span is None:
            return request
        span = self.telemetry.tracing.start_client(
            self.span,
            request.method,
            {
                "http.request.method": request.method,
                "url.path": request.path.decode("latin-1"),
                "gateway.route": request.route,
                "gateway.target": self.target or "",
                "gateway.upstream.kind": upstream_kind,
            },
        )
        self.client_span = span
        return request.with_headers(inject(span.get_span_context(), request.headers))

    def answered(self, status: int) -> None:
        self.upstream_ms = (time.perf_counter() - self.upstream_started) * 1000
        if self.client_span is not None:
            self.client_span.set_attribute("http.response.status_code", status)
            if status >= 500:
                self.client_span.set_status(Status(StatusCode.ERROR))
            self.client_span.end()

    def failed(self, error: GatewayError) -> None:
        self.status = error.status_code
        if self.upstream_started and self.upstream_ms is None:
            self.upstream_ms = (time.perf_counter() - self.upstream_started) * 1000
        for span in (self.client_span, self.span):
            if span is not None and span.is_recording():
                span.set_attribute("error.type", error.code)
                span.set_status(Status(StatusCode.ERROR, error.code))
        if self.client_span is not None and self.client_span.end_time is None:
            self.client_span.end()

    def finish(self, bytes_in: int, bytes_out: int) -> None:
        seconds = time.perf_counter() - self.started
        telemetry = self.telemetry
        if self.route is not None and self.target is not None:
            telemetry.metrics.observe(self.route, self.target, self.status, seconds)
        span = self.span
        if span is not None:
            span.set_attribute("http.response.status_code", self.status)
            if self.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
        if telemetry.access_log is not None:
            telemetry.access_log.write(self._record(seconds, bytes_in, bytes_out))

    def _record(self, seconds: float, bytes_in: int, bytes_out: int) -> dict[str, Any]:
        scope = self.scope
        context = self.span.get_span_context() if self.span is not None else None
        client = scope.get("client")
        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
            "trace_id": f"{context.trace_id:032x}" if context else None,
            "span_id": f"{context.span_id:016x}" if context else None,
            "route": self.route,
            "target": self.target,
            "method": scope["method"],
            "path": scope["path"],
            "query": self.telemetry.redactor.query(scope.get("query_string", b"")),
            "status": self.status,
            "duration_ms": round(seconds * 1000, 3),
            "upstream_ms": round(self.upstream_ms, 3) if self.upstream_ms is not None else None,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "client": client[0] if client else None,
            "fallback": self.fallback,
            "retry": self.retry,
        }
