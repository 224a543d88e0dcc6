"""Per route x target: requests, 5xx errors and a latency histogram, in Prometheus form.

In one process the counts are plain integers, rendered to the Prometheus text format at
scrape time: an observation costs a few dictionary updates, and a Lambda cold start does
not import prometheus_client. Under `uvicorn --workers N` each worker is its own process
and a scrape lands on one of them, so there the counts live in prometheus_client's
multiprocess files: every worker writes its own, and `/_gateway/metrics` sums them all.
The directory is PROMETHEUS_MULTIPROC_DIR, or, in a worker of a multiprocess server that
did not set it, one named after the supervisor.
"""

from __future__ import annotations

import bisect
import multiprocessing
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from gateway.fleet.store import LATENCY_BUCKETS, StateObserver
from gateway.telemetry.recent import RecentWindow
from gateway.telemetry.state_metrics import (
    AVAILABLE,
    AVAILABLE_HELP,
    LATENCY,
    LATENCY_HELP,
    UNAVAILABLE,
    UNAVAILABLE_HELP,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# below 5 ms too, so a p99 of 2 ms is not read as 4.95 ms (the names stay the same)
BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.004,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
LABELS = ("route", "target")
FALLBACK_LABELS = ("route", "from_target", "to_target", "reason")
BREAKER_LABELS = ("target", "state")
HELP = {
    "gateway_requests": "Requests answered",
    "gateway_errors_5xx": "Requests answered with a 5xx",
    "gateway_request_duration_seconds": "Time from request to the end of the answer",
    "gateway_fallbacks": "Requests a target failed and the route's fallback served: gaps",
    "gateway_retries": "Retries sent to a target",
    "gateway_breaker_transitions": "Circuit breaker state changes per target",
}


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


def create_metrics() -> Metrics:
    """In-process counters, or prometheus_client's shared files in a multi-worker server."""
    directory = multiprocess_dir()
    return SharedMetrics(directory) if directory is not None else LocalMetrics()


class Metrics:
    """The gateway's counters, whichever storage holds them; `recent`, the last hour's."""

    recent: RecentWindow

    def observe(self, route: str, target: str, status: int, seconds: float) -> None:
        raise NotImplementedError

    def observe_fallback(self, route: str, failed: str, fallback: str, reason: str) -> None:
        raise NotImplementedError

    def observe_retry(self, route: str, target: str) -> None:
        raise NotImplementedError

    def observe_breaker(self, target: str, old: str, new: str) -> None:
        raise NotImplementedError

    def state_observer(self) -> StateObserver | None:
        """What the shared state's store should tell of its calls, if these metrics keep them
        (else /_gateway/metrics renders the store's own counts)."""
        return None

    def render(self) -> tuple[bytes, str]:
        raise NotImplementedError


class LocalMetrics(Metrics):
    def __init__(self) -> None:
        self.recent = RecentWindow()
        self.requests: defaultdict[tuple[str, ...], int] = defaultdict(int)
        self.errors: defaultdict[tuple[str, ...], int] = defaultdict(int)
        self.latency: dict[tuple[str, ...], list[float]] = {}
        self.fallbacks: defaultdict[tuple[str, ...], int] = defaultdict(int)
        self.retries: defaultdict[tuple[str, ...], int] = defaultdict(int)
        self.breaker: defaultdict[tuple[str, ...], int] = defaultdict(int)

    def observe(self, route: str, target: str, status: int, seconds: float) -> None:
        self.recent.observe(route, target, status, seconds)
        key = (route, target)
        self.requests[key] += 1
        if status >= 500:
            self.errors[key] += 1
        # Per bucket (not cumulative) counts, then +Inf, then the sum.
        counts = self.latency.get(key)
        if counts is None:
            counts = self.latency[key] = [0.0] * (len(BUCKETS) + 2)
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def observe_fallback(self, route: str, failed: str, fallback: str, reason: str) -> None:
        self.fallbacks[(route, failed, fallback, reason)] += 1

    def observe_retry(self, route: str, target: str) -> None:
        self.retries[(route, target)] += 1

    def observe_breaker(self, target: str, old: str, new: str) -> None:
        self.breaker[(target, new)] += 1

    def render(self) -> tuple[bytes, str]:
        lines: list[str] = []
        _counter(lines, "gateway_requests", LABELS, self.requests)
        _counter(lines, "gateway_errors_5xx", LABELS, self.errors)
        _histogram(lines, "gateway_request_duration_seconds", self.latency)
        _counter(lines, "gateway_fallbacks", FALLBACK_LABELS, self.fallbacks)
        _counter(lines, "gateway_retries", LABELS, self.retries)
        _counter(lines, "gateway_breaker_transitions", BREAKER_LABELS, self.breaker)
        return ("\n".join(lines) + "\n").encode(), CONTENT_TYPE


def _labels(names: tuple[str, ...], values: tuple[str, ...], le: str | None = None) -> str:
    """Label pairs sorted by name, as prometheus_client writes them."""
    pairs = dict(zip(names, values, strict=True))
    if le is not None:
        pairs["le"] = le
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(pairs.items())) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _counter(
    lines: list[str], name: str, names: tuple[str, ...], values: dict[tuple[str, ...], int]
) -> None:
    lines += [f"# HELP {name}_total {HELP[name]}", f"# TYPE {name}_total counter"]
    for key, count in sorted(values.items()):
        lines.append(f"{name}_total{_labels(names, key)} {float(count)}")


def _histogram(lines: list[str], name: str, values: dict[tuple[str, ...], list[float]]) -> None:
    lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} histogram"]
    for key, counts in sorted(values.items()):
        running = 0.0
        bounds: tuple[float | str, ...] = (*BUCKETS, "+Inf")
        for bound, count in zip(bounds, counts[:-1], strict=True):
            running += count
            lines.append(f"{name}_bucket{_labels(LABELS, key, _le(bound))} {running}")
        lines.append(f"{name}_count{_labels(LABELS, key)} {running}")
        lines.append(f"{name}_sum{_labels(LABELS, key)} {counts[-1]}")


def _le(bound: float | str) -> str:
    return bound if isinstance(bound, str) else repr(float(bound))


class SharedMetrics(Metrics):
    """prometheus_client in multiprocess mode: every worker's counts in one scrape."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.recent = RecentWindow()
        # cold start: prometheus_client only once metrics are made or read
        from prometheus_client import Counter, Histogram

        _forget_dead_workers(directory)
        self.requests = Counter("gateway_requests", HELP["gateway_requests"], LABELS, registry=None)
        self.errors = Counter(
            "gateway_errors_5xx", HELP["gateway_errors_5xx"], LABELS, registry=None
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            HELP["gateway_request_duration_seconds"],
            LABELS,
            buckets=BUCKETS,
            registry=None,
        )
        self.fallbacks = Counter(
            "gateway_fallbacks", HELP["gateway_fallbacks"], FALLBACK_LABELS, registry=None
        )
        self.retries = Counter("gateway_retries", HELP["gateway_retries"], LABELS, registry=None)
        self.breaker = Counter(
            "gateway_breaker_transitions",
            HELP["gateway_breaker_transitions"],
            BREAKER_LABELS,
            registry=None,
        )

    def observe(self, route: str, target: str, status: int, seconds: float) -> None:
        self.recent.observe(route, target, status, seconds)
        self.requests.labels(route, target).inc()
        if status >= 500:
            self.errors.labels(route, target).inc()
        self.latency.labels(route, target).observe(seconds)

    def observe_fallback(self, route: str, failed: str, fallback: str, reason: str) -> None:
        self.fallbacks.labels(route, failed, fallback, reason).inc()

    def observe_retry(self, route: str, target: str) -> None:
        self.retries.labels(route, target).inc()

    def observe_breaker(self, target: str, old: str, new: str) -> None:
        self.breaker.labels(target, new).inc()

    def state_observer(self) -> StateObserver:
        """Each worker's Redis calls into the shared files, so a scrape sums the workers'
        (one worker's own counts would jump between scrapes that land on different ones)."""
        # cold start: prometheus_client only once metrics are made or read
        from prometheus_client import Counter, Gauge, Histogram

        unavailable = Counter(UNAVAILABLE.removesuffix("_total"), UNAVAILABLE_HELP, registry=None)
        latency = Histogram(LATENCY, LATENCY_HELP, buckets=LATENCY_BUCKETS, registry=None)
        available = Gauge(AVAILABLE, AVAILABLE_HELP, registry=None, multiprocess_mode="livemin")
        available.set(1)

        def observe(seconds: float | None, failed: int, up: bool) -> None:
            if seconds is not None:
                latency.observe(seconds)
            if failed:
                unavailable.inc(failed)
            available.set(1 if up else 0)

        return observe

    def render(self) -> tuple[bytes, str]:
        # cold start: prometheus_client only once metrics are made or read
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry: Any = CollectorRegistry()
        MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST


def _forget_dead_workers(directory: str) -> None:
    for path in Path(directory).glob("*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            path.unlink(missing_ok=True)
