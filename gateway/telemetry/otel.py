"""The OpenTelemetry side of tracing, imported only when an exporter is configured: the
provider, W3C and X-Ray trace headers read and written, spans started and ended."""

from __future__ import annotations

import contextvars
import re
from collections.abc import Mapping
from typing import Any

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from gateway.headers import RawHeaders

TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"x-amzn-trace-id"})

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_XRAY_ROOT = re.compile(r"^1-([0-9a-f]{8})-([0-9a-f]{24})$")
_forced_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "gateway_forced_trace_id", default=None
)
_ERROR = Status(StatusCode.ERROR)


class AlbRootIdGenerator(RandomIdGenerator):
    """Lets a root span take the trace id the ALB chose (X-Amzn-Trace-Id with no Parent)."""

    def generate_trace_id(self) -> int:
        forced = _forced_trace_id.get()
        return forced if forced is not None else super().generate_trace_id()


class HashedResource(Resource):
    """A Resource hashed once: the OTLP encoder groups every exported span by its resource,
    and the SDK's hash serializes the attributes to JSON each time (profiled: a tenth of
    the export thread). A resource never changes once built, so its hash cannot either."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(dict(resource.attributes), resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other)


def build_provider(service: str, names: list[str]) -> TracerProvider:
    resource = HashedResource(Resource.create({"service.name": service}))
    provider = TracerProvider(resource=resource, id_generator=AlbRootIdGenerator())
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    return provider


def tracer_for(provider: TracerProvider) -> Tracer:
    if type(provider.id_generator) is RandomIdGenerator:
        # Needed to adopt an ALB's root trace id; a custom generator is left alone.
        provider.id_generator = AlbRootIdGenerator()
    return provider.get_tracer("gateway")  # type: ignore[return-value]


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


def start_server(
    tracer: Tracer, name: str, headers: Mapping[str, str], attributes: dict[str, Any]
) -> Span:
    parent, forced = extract(headers)
    if forced is None:
        span = tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
        return span  # type: ignore[return-value]
    token = _forced_trace_id.set(forced)
    try:
        span = tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
    finally:
        _forced_trace_id.reset(token)
    return span  # type: ignore[return-value]


def start_client(tracer: Tracer, name: str, attributes: dict[str, Any]) -> Span:
    """A client span under the current one (the request's server span, made current)."""
    span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
    return span  # type: ignore[return-value]


def activate(span: Span) -> object:
    return context.attach(trace.set_span_in_context(span))


def deactivate(token: object) -> None:
    context.detach(token)  # type: ignore[arg-type]


def end(span: Span, status: int, error: str | None = None) -> None:
    """Record the answer's status (or the error that replaced it) and end `span`."""
    if error is not None:
        span.set_attributes({"error.type": error, "http.response.status_code": status})
        span.set_status(Status(StatusCode.ERROR, error))
    else:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(_ERROR)
    span.end()


def end_failed(span: Span, error: str) -> None:
    """A try that got no answer: the error's code, and the span ended."""
    span.set_attribute("error.type", error)
    span.set_status(Status(StatusCode.ERROR, error))
    span.end()
