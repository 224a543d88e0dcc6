"""The shared state's own metrics, in Prometheus text: how often Redis was unavailable, and how
long its calls took. Rendered from the `StateStore`'s snapshot of this process (a Lambda
environment, a single worker); under several workers the metrics' shared files keep them
instead (`Metrics.state_observer`), so a scrape sums every worker's."""

from __future__ import annotations

from gateway.fleet.store import StoreSnapshot

UNAVAILABLE = "gateway_state_unavailable_total"
UNAVAILABLE_HELP = "Redis calls that failed or outlived state.timeout (each went on_unavailable)"
LATENCY = "gateway_state_call_duration_seconds"
LATENCY_HELP = "Time of one Redis round trip (one batch of calls), failures included"
AVAILABLE = "gateway_state_available"
AVAILABLE_HELP = "Whether the last Redis call succeeded (1) or not (0)"


def render_state(snapshot: StoreSnapshot) -> str:
    lines = [
        f"# HELP {UNAVAILABLE} {UNAVAILABLE_HELP}",
        f"# TYPE {UNAVAILABLE} counter",
        f"{UNAVAILABLE} {float(snapshot.unavailable_total)}",
        f"# HELP {AVAILABLE} {AVAILABLE_HELP}",
        f"# TYPE {AVAILABLE} gauge",
        f"{AVAILABLE} {1.0 if snapshot.available else 0.0}",
        f"# HELP {LATENCY} {LATENCY_HELP}",
        f"# TYPE {LATENCY} histogram",
    ]
    for bound, count in snapshot.latency_buckets:
        lines.append(f'{LATENCY}_bucket{{le="{float(bound)!r}"}} {float(count)}')
    lines.append(f'{LATENCY}_bucket{{le="+Inf"}} {float(snapshot.calls)}')
    lines.append(f"{LATENCY}_count {float(snapshot.calls)}")
    lines.append(f"{LATENCY}_sum {snapshot.latency_sum}")
    return "\n".join(lines) + "\n"
