"""This backend's traces: OpenTelemetry's stock ASGI middleware, on only when OTEL_* asks.

A backend is a stranger to the gateway: it continues the caller's W3C `traceparent` the way
any instrumented service would, with nothing of the gateway's own code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fastapi import FastAPI


def add_tracing(app: FastAPI, service: str, environ: Mapping[str, str] = os.environ) -> None:
    """Wrap `app` in a server span per request when an exporter is configured."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    exporters = {n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",")}
    exporters.discard("")
    if not exporters and (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        exporters = {"otlp"}
    exporters.discard("none")
    if not exporters:
        return
    # cold start: the SDK only for a backend that exports traces
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    name = environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    for exporter in sorted(exporters):
        if exporter == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=provider)
