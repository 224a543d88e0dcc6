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

from gateway.asgi import Scope
from gateway.config.model import Route
from gateway.errors import GatewayError
from gateway.headers import HeaderView
from gateway.telemetry.access_log import AccessLog, Redactor
from gateway.telemetry.metrics import Metrics, create_metrics
from gateway.telemetry.tracing import Tracing, inject
from gateway.upstreams.base import UpstreamRequest


@dataclass(slots=True)
class Telemetry:
    tracing: Tracing
    metrics: Metrics
    access_log: AccessLog | None
    redactor: Redactor = field(default_factory=Redactor)

    @classmethod
    def from_env(cls) -> Telemetry:
        return cls(Tracing.from_env(), create_metrics(), AccessLog.from_env(), Redactor.from_env())

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

    def matched(self, route: Route) -> None:
        self.route = route.name
        if self.span is not None:
            self.span.update_name(f"{self.scope['method']} {route.name}")

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
        span, self.client_span = self.client_span, None
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()

    def upstream_failed(self, error: GatewayError) -> None:
        """One try failed before an answer (a retry or a fallback may follow)."""
        self.upstream_ms = (time.perf_counter() - self.upstream_started) * 1000
        span, self.client_span = self.client_span, None
        if span is not None:
            span.set_attribute("error.type", error.code)
            span.set_status(Status(StatusCode.ERROR, error.code))
            span.end()

    def retried(self) -> None:
        self.retry = True
        if self.route is not None and self.target is not None:
            self.telemetry.metrics.observe_retry(self.route, self.target)

    def fell_back(self, target: str, status: int, reason: str) -> None:
        """The route's target failed with `status`; `target` (the fallback) takes over.

        The failed try still counts for its own target: it is the canary's evidence."""
        route, failed = self.route or "", self.target or ""
        metrics = self.telemetry.metrics
        metrics.observe(route, failed, status, time.perf_counter() - self.started)
        metrics.observe_fallback(route, failed, target, reason)
        self.fallback, self.target = True, target
        if self.span is not None:
            self.span.set_attributes(
                {
                    "gateway.fallback": True,
                    "gateway.fallback_from": failed,
                    "gateway.target": target,
                }
            )

    def failed(self, error: GatewayError) -> None:
        self.status = error.status_code
        if self.client_span is not None:
            self.upstream_failed(error)
        if self.span is not None and self.span.is_recording():
            self.span.set_attribute("error.type", error.code)
            self.span.set_status(Status(StatusCode.ERROR, error.code))

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
