"""Traces: a server span per request, a client span per upstream call.

An incoming W3C `traceparent`/`tracestate`, or else an AWS `X-Amzn-Trace-Id` (the ALB adds
one with a Root and no Parent), is continued; every upstream request carries both formats
with the gateway's client span as parent. Export follows the standard OTEL_* variables;
with no exporter configured tracing is off and costs nothing: trace headers pass through,
and OpenTelemetry is not even imported (a Lambda cold start without tracing skips it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from gateway.headers import RawHeaders

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import Span, TracerProvider

DEFAULT_SERVICE = "strangler-gateway"
FLUSH_MILLIS = 2000


def exporters_from_env(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The exporters OTEL_* asks for; none means tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n]
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not names:
        names = ["otlp"] if endpoint else []
    return [n for n in names if n != "none"]


def provider_from_env(environ: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """A provider with the exporters OTEL_* asks for, or None when tracing is off."""
    names = exporters_from_env(environ)
    if not names:
        return None
    # cold start: the OpenTelemetry SDK only when an exporter is configured
    from gateway.telemetry import otel

    return otel.build_provider(environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE, names)


class Tracing:
    """The gateway's tracer; `enabled` is False when no exporter is configured."""

    __slots__ = ("_otel", "_tracer", "enabled", "provider")

    def __init__(self, provider: TracerProvider | None) -> None:
        self.provider = provider
        self.enabled = provider is not None
        self._otel: ModuleType | None = None
        self._tracer: Any = None
        if provider is not None:
            # cold start: the OpenTelemetry SDK only when there is a provider
            from gateway.telemetry import otel

            self._otel = otel
            self._tracer = otel.tracer_for(provider)

    @classmethod
    def from_env(cls) -> Tracing:
        return cls(provider_from_env())

    def _on(self) -> ModuleType:
        if self._otel is None:
            raise RuntimeError("tracing is off")
        return self._otel

    def start_server(
        self, name: str, headers: Mapping[str, str], attributes: dict[str, Any]
    ) -> Span:
        span: Span = self._on().start_server(self._tracer, name, headers, attributes)
        return span

    def start_client(self, name: str, attributes: dict[str, Any]) -> Span:
        """A client span under the current one (the server span `activate` made current)."""
        span: Span = self._on().start_client(self._tracer, name, attributes)
        return span

    def activate(self, span: Span) -> object:
        """Make `span` the current one for this task; `deactivate(token)` undoes it."""
        return self._on().activate(span)

    def deactivate(self, token: object) -> None:
        self._on().deactivate(token)

    def inject(self, span: Span, headers: RawHeaders) -> RawHeaders:
        """`headers` with the trace headers replaced by ones naming `span` as the parent."""
        injected: RawHeaders = self._on().inject(span.get_span_context(), headers)
        return injected

    def end(self, span: Span, status: int, error: str | None = None) -> None:
        self._on().end(span, status, error)

    def end_failed(self, span: Span, error: str) -> None:
        self._on().end_failed(span, error)

    def flush(self, timeout_millis: int = FLUSH_MILLIS) -> bool:
        if self.provider is None:
            return True
        return bool(self.provider.force_flush(timeout_millis))

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()
