"""Per route x target: requests, 5xx errors and a latency histogram, in Prometheus form.

Under `uvicorn --workers N` each worker is its own process and a scrape lands on one of
them, so the counts live in prometheus_client's multiprocess files: every worker writes its
own, and `/_gateway/metrics` sums them all. The directory is PROMETHEUS_MULTIPROC_DIR, or,
in a worker of a multiprocess server that did not set it, one named after the supervisor.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LABELS = ("route", "target")


def multiprocess_dir() -> str | None:
    """The shared metrics directory when this process is one of several workers."""
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        return configured
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return None
    directory = Path(tempfile.gettempdir()) / f"gateway-metrics-{parent.pid}"
    directory.mkdir(exist_ok=True)
    # Must be set before prometheus_client is first imported: it picks its storage then.
    os.environ[MULTIPROC_ENV] = str(directory)
    return str(directory)


def _forget_dead_workers(directory: str) -> None:
    for path in Path(directory).glob("*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            path.unlink(missing_ok=True)


class Metrics:
    def __init__(self) -> None:
        self.directory = multiprocess_dir()
        from prometheus_client import CollectorRegistry, Counter, Histogram

        if self.directory is not None:
            _forget_dead_workers(self.directory)
        # Multiprocess values live in files, not a registry; else one registry per app, so
        # several apps in one process (tests) never collide.
        self.registry: Any = CollectorRegistry() if self.directory is None else None
        self.requests = Counter(
            "gateway_requests", "Requests answered", LABELS, registry=self.registry
        )
        self.errors = Counter(
            "gateway_errors_5xx", "Requests answered with a 5xx", LABELS, registry=self.registry
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "Time from request to the end of the answer",
            LABELS,
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "gateway_fallbacks",
            "Requests a target failed and the route's fallback served: migration gaps",
            ("route", "from_target", "to_target", "reason"),
            registry=self.registry,
        )
        self.retries = Counter(
            "gateway_retries", "Retries sent to a target", LABELS, registry=self.registry
        )
        self.breaker_changes = Counter(
            "gateway_breaker_transitions",
            "Circuit breaker state changes per target",
            ("target", "state"),
            registry=self.registry,
        )
        self._children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    def observe(self, route: str, target: str, status: int, seconds: float) -> None:
        key = (route, target)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, target),
                self.errors.labels(route, target),
                self.latency.labels(route, target),
            )
            self._children[key] = children
        requests, errors, latency = children
        requests.inc()
        if status >= 500:
            errors.inc()
        latency.observe(seconds)

    def observe_fallback(self, route: str, failed: str, fallback: str, reason: str) -> None:
        self.fallbacks.labels(route, failed, fallback, reason).inc()

    def observe_retry(self, route: str, target: str) -> None:
        self.retries.labels(route, target).inc()

    def observe_breaker(self, target: str, old: str, new: str) -> None:
        self.breaker_changes.labels(target, new).inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = self.registry
        if registry is None:
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
