"""Telemetry for tests: spans into memory, log lines into a list."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.telemetry.access_log import AccessLog, Redactor
from gateway.telemetry.exchange import Telemetry
from gateway.telemetry.metrics import create_metrics
from gateway.telemetry.tracing import Tracing


@dataclass
class Recorded:
    telemetry: Telemetry
    exporter: InMemorySpanExporter
    lines: list[str] = field(default_factory=list)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, kind_name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.kind.name == kind_name]
        assert len(found) == 1, [s.name for s in self.spans()]
        return found[0]

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


def recorded(
    *,
    tracing: bool = True,
    processor: SpanProcessor | None = None,
    redactor: Redactor | None = None,
) -> Recorded:
    exporter = InMemorySpanExporter()
    provider = None
    if tracing:
        provider = TracerProvider()
        provider.add_span_processor(processor or SimpleSpanProcessor(exporter))
    lines: list[str] = []
    telemetry = Telemetry(
        Tracing(provider), create_metrics(), AccessLog(lines.append), redactor or Redactor()
    )
    return Recorded(telemetry, exporter, lines)
