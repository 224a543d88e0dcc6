"""The shared state's own metrics, in Prometheus text: how often Redis was unavailable, and how
long its calls took. Rendered from the `StateStore`'s snapshot of this process (each uvicorn
worker, each Lambda environment has its own store, so its own counts)."""

from __future__ import annotations

from gateway.fleet.store import StoreSnapshot

UNAVAILABLE = "gateway_state_unavailable_total"
LATENCY = "gateway_state_call_duration_seconds"


def render_state(snapshot: StoreSnapshot) -> str:
    lines = [
        f"# HELP {UNAVAILABLE} Redis calls that failed or outlived state.timeout "
        "(each one followed on_unavailable)",
        f"# TYPE {UNAVAILABLE} counter",
        f"{UNAVAILABLE} {float(snapshot.unavailable_total)}",
        "# HELP gateway_state_available Whether the last Redis call succeeded (1) or not (0)",
        "# TYPE gateway_state_available gauge",
        f"gateway_state_available {1.0 if snapshot.available else 0.0}",
        f"# HELP {LATENCY} Time of one Redis call (one script or command), failures included",
        f"# TYPE {LATENCY} histogram",
    ]
    for bound, count in snapshot.latency_buckets:
        lines.append(f'{LATENCY}_bucket{{le="{float(bound)!r}"}} {float(count)}')
    lines.append(f'{LATENCY}_bucket{{le="+Inf"}} {float(snapshot.calls)}')
    lines.append(f"{LATENCY}_count {float(snapshot.calls)}")
    lines.append(f"{LATENCY}_sum {snapshot.latency_sum}")
    return "\n".join(lines) + "\n"
