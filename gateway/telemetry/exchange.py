"""What the gateway records of each request: one trace, one log line, one metrics sample.

`Telemetry` is built once per app; `Exchange` is one request's record, created by the proxy
and passed along in arguments (never kept on a shared object).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gateway.asgi import Scope
from gateway.config.model import Route
from gateway.errors import GatewayError
from gateway.headers import HeaderView
from gateway.telemetry.access_log import AccessLog, Redactor
from gateway.telemetry.metrics import Metrics, create_metrics
from gateway.telemetry.tracing import Tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import Span


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
            span = self.tracing.start_server(
                scope["method"], headers, self._server_attributes(scope, headers)
            )
            exchange.span = span
            exchange.context_token = self.tracing.activate(span)
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


class FellBackFrom(Protocol):
    @property
    def target(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def retries(self) -> int: ...


class Forwarded(Protocol):
    """What forwarding did, as far as the record goes (the corridor's result meets it)."""

    @property
    def target(self) -> str: ...
    @property
    def fell_back(self) -> FellBackFrom | None: ...
    @property
    def retries(self) -> int: ...
    @property
    def upstream_seconds(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Ending:
    """How a request ended: its status and bytes, the route matched (when it was refused
    before a target was picked), the error answered, and what forwarding did."""

    status: int
    bytes_out: int = 0
    route: Route | None = None
    error: GatewayError | None = None
    forwarded: Forwarded | None = None


class Exchange:
    """One request as the gateway saw it, from arrival to the last byte of its answer.

    Touched three times: `Telemetry.begin`, `routed` once a target is picked, `finish`."""

    __slots__ = ("context_token", "route", "scope", "span", "started", "target", "telemetry")

    def __init__(self, telemetry: Telemetry, scope: Scope, started: float) -> None:
        self.telemetry = telemetry
        self.scope = scope
        self.started = started
        self.span: Span | None = None
        self.context_token: object = None
        self.route: Route | None = None
        self.target: str | None = None

    def routed(self, route: Route, target: str, sticky: bool) -> None:
        self.route, self.target = route, target
        if self.span is not None:
            self.span.update_name(f"{self.scope['method']} {route.name}")
            self.span.set_attributes(
                {
                    "http.route": route.path,
                    "gateway.route": route.name,
                    "gateway.target": target,
                    "gateway.weight": next((w for t, w in route.split if t == target), 0.0),
                    "gateway.sticky": sticky,
                }
            )

    def finish(self, end: Ending, bytes_in: int) -> None:
        """The request is over: one metrics sample (two after a fallback), the server span
        ended, one log line."""
        seconds = time.perf_counter() - self.started
        telemetry = self.telemetry
        metrics = telemetry.metrics
        route = self.route or end.route
        forwarded = end.forwarded
        target = forwarded.target if forwarded is not None else self.target
        fell_back = forwarded.fell_back if forwarded is not None else None
        if route is not None:
            name = route.name
            if fell_back is not None:
                # The failed target still counts: it is the canary's evidence.
                metrics.observe(name, fell_back.target, fell_back.status, seconds)
                metrics.observe_fallback(name, fell_back.target, target or "", fell_back.reason)
                for _ in range(fell_back.retries):
                    metrics.observe_retry(name, fell_back.target)
            if target is not None:
                for _ in range(forwarded.retries if forwarded is not None else 0):
                    metrics.observe_retry(name, target)
                metrics.observe(name, target, end.status, seconds)
        if self.span is not None:
            self._end_span(self.span, end, route, target)
        if telemetry.access_log is not None:
            telemetry.access_log.write(self._record(seconds, end, bytes_in, route, target))

    def _end_span(self, span: Span, end: Ending, route: Route | None, target: str | None) -> None:
        if route is not None and self.route is None:
            span.update_name(f"{self.scope['method']} {route.name}")
        fell_back = end.forwarded.fell_back if end.forwarded is not None else None
        if fell_back is not None:
            span.set_attributes(
                {
                    "gateway.fallback": True,
                    "gateway.fallback_from": fell_back.target,
                    "gateway.target": target or "",
                }
            )
        tracing = self.telemetry.tracing
        tracing.end(span, end.status, end.error.code if end.error is not None else None)
        if self.context_token is not None:
            self.telemetry.tracing.deactivate(self.context_token)

    def _record(
        self, seconds: float, end: Ending, bytes_in: int, route: Route | None, target: str | None
    ) -> dict[str, Any]:
        scope = self.scope
        context = self.span.get_span_context() if self.span is not None else None
        client = scope.get("client")
        forwarded = end.forwarded
        upstream = forwarded.upstream_seconds if forwarded is not None else None
        fell_back = forwarded.fell_back if forwarded is not None else None
        retried = forwarded is not None and (
            forwarded.retries > 0 or (fell_back is not None and fell_back.retries > 0)
        )
        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
            "trace_id": f"{context.trace_id:032x}" if context else None,
            "span_id": f"{context.span_id:016x}" if context else None,
            "route": route.name if route is not None else None,
            "target": target,
            "method": scope["method"],
            "path": scope["path"],
            "query": self.telemetry.redactor.query(scope.get("query_string", b"")),
            "status": end.status,
            "duration_ms": round(seconds * 1000, 3),
            "upstream_ms": round(upstream * 1000, 3) if upstream is not None else None,
            "bytes_in": bytes_in,
            "bytes_out": end.bytes_out,
            "client": client[0] if client else None,
            "fallback": fell_back is not None,
            "retry": retried,
        }
