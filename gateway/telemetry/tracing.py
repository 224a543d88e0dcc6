"""Traces: a server span per request, a client span per upstream call.

An incoming W3C `traceparent`/`tracestate`, or else an AWS `X-Amzn-Trace-Id` (the ALB adds
one with a Root and no Parent), is continued; every upstream request carries both formats
with the gateway's client span as parent. Export follows the standard OTEL_* variables;
with no exporter configured tracing is off and costs nothing: trace headers pass through.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Mapping
from typing import Any

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from gateway.asgi import ASGIApp, Message, Receive, Scope, Send
from gateway.headers import RawHeaders

TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"x-amzn-trace-id"})
DEFAULT_SERVICE = "strangler-gateway"
FLUSH_MILLIS = 2000

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_XRAY_ROOT = re.compile(r"^1-([0-9a-f]{8})-([0-9a-f]{24})$")
_forced_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "gateway_forced_trace_id", default=None
)


class AlbRootIdGenerator(RandomIdGenerator):
    """Lets a root span take the trace id the ALB chose (X-Amzn-Trace-Id with no Parent)."""

    def generate_trace_id(self) -> int:
        forced = _forced_trace_id.get()
        return forced if forced is not None else super().generate_trace_id()


def provider_from_env(environ: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """A provider with the exporters OTEL_* asks for, or None when tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n]
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not names:
        names = ["otlp"] if endpoint else []
    names = [n for n in names if n != "none"]
    if not names:
        return None
    service = environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}), id_generator=AlbRootIdGenerator()
    )
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    return provider


def _exporter(name: str) -> Any:
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        # cold start: the OTLP exporter only when one is configured
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console, none)")


def extract(headers: Mapping[str, str]) -> tuple[Context | None, int | None]:
    """The remote parent to continue, or an ALB root trace id to adopt, from request headers."""
    parent = headers.get("traceparent")
    if parent:
        found = _TRACEPARENT.match(parent.strip().lower())
        if found and int(found.group(1), 16) and int(found.group(2), 16):
            state = TraceState.from_header([headers.get("tracestate") or ""])
            context = SpanContext(
                int(found.group(1), 16),
                int(found.group(2), 16),
                is_remote=True,
                trace_flags=TraceFlags(int(found.group(3), 16) & 1),
                trace_state=state,
            )
            return trace.set_span_in_context(trace.NonRecordingSpan(context)), None
    return _extract_xray(headers.get("x-amzn-trace-id"))


def _extract_xray(value: str | None) -> tuple[Context | None, int | None]:
    if not value:
        return None, None
    fields = dict(part.strip().partition("=")[::2] for part in value.split(";") if "=" in part)
    root = _XRAY_ROOT.match(fields.get("Root", "").lower())
    if root is None:
        return None, None
    trace_id = int(root.group(1) + root.group(2), 16)
    parent = fields.get("Parent", "")
    if re.fullmatch(r"[0-9a-fA-F]{16}", parent) and int(parent, 16):
        sampled = TraceFlags(1 if fields.get("Sampled") == "1" else 0)
        context = SpanContext(trace_id, int(parent, 16), is_remote=True, trace_flags=sampled)
        return trace.set_span_in_context(trace.NonRecordingSpan(context)), None
    return None, trace_id


def inject(context: SpanContext, headers: RawHeaders) -> RawHeaders:
    """Headers with the trace headers replaced by ones naming `context` as the parent."""
    out = [(name, value) for name, value in headers if name not in TRACE_HEADERS]
    trace_id = f"{context.trace_id:032x}"
    span_id = f"{context.span_id:016x}"
    sampled = int(context.trace_flags.sampled)
    out.append((b"traceparent", f"00-{trace_id}-{span_id}-{sampled:02x}".encode()))
    if context.trace_state:
        out.append((b"tracestate", context.trace_state.to_header().encode()))
    xray = f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={span_id};Sampled={sampled}"
    out.append((b"x-amzn-trace-id", xray.encode()))
    return out


class Tracing:
    """The gateway's tracer; `enabled` is False when no exporter is configured."""

    def __init__(self, provider: TracerProvider | None) -> None:
        if provider is not None and type(provider.id_generator) is RandomIdGenerator:
            # Needed to adopt an ALB's root trace id; a custom generator is left alone.
            provider.id_generator = AlbRootIdGenerator()
        self.provider = provider
        self.enabled = provider is not None
        self._tracer = provider.get_tracer("gateway") if provider is not None else None

    @classmethod
    def from_env(cls) -> Tracing:
        return cls(provider_from_env())

    def start_server(
        self, name: str, headers: Mapping[str, str], attributes: dict[str, Any]
    ) -> Span:
        if self._tracer is None:
            raise RuntimeError("tracing is off")
        parent, forced = extract(headers)
        token = _forced_trace_id.set(forced)
        try:
            span = self._tracer.start_span(
                name, context=parent, kind=SpanKind.SERVER, attributes=attributes
            )
        finally:
            _forced_trace_id.reset(token)
        return span  # type: ignore[return-value]

    def start_client(self, name: str, attributes: dict[str, Any]) -> Span:
        """A client span under the current one (the request's server span, made current by
        `activate`)."""
        if self._tracer is None:
            raise RuntimeError("tracing is off")
        span = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        return span  # type: ignore[return-value]

    @staticmethod
    def activate(span: Span) -> object:
        """Make `span` the current one for this task; `deactivate(token)` undoes it."""
        return context.attach(trace.set_span_in_context(span))

    @staticmethod
    def deactivate(token: object) -> None:
        context.detach(token)  # type: ignore[arg-type]

    @staticmethod
    def end_answered(span: Span, status: int) -> None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    @staticmethod
    def end_failed(span: Span, code: str) -> None:
        span.set_attribute("error.type", code)
        span.set_status(Status(StatusCode.ERROR, code))
        span.end()

    def flush(self, timeout_millis: int = FLUSH_MILLIS) -> bool:
        if self.provider is None:
            return True
        return bool(self.provider.force_flush(timeout_millis))

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


class ServerTracing:
    """ASGI middleware giving a backend (the legacy stub, a new service) a server span that
    continues the caller's trace, so one trace shows client -> gateway -> backend."""

    def __init__(self, app: ASGIApp, service: str, tracing: Tracing | None = None) -> None:
        self.app = app
        if tracing is None:
            environ = {**os.environ, "OTEL_SERVICE_NAME": os.environ.get("OTEL_SERVICE_NAME", "")}
            environ["OTEL_SERVICE_NAME"] = environ["OTEL_SERVICE_NAME"] or service
            tracing = Tracing(provider_from_env(environ))
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.tracing.enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        span = self.tracing.start_server(
            f"{scope['method']} {scope['path']}",
            headers,
            {"http.request.method": scope["method"], "url.path": scope["path"]},
        )
        status = 0

        async def traced_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, traced_send)
        finally:
            span.set_attribute("http.response.status_code", status)
            span.end()
            if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
                self.tracing.flush()
