"""One JSON line per request; on Lambda the same line carries the CloudWatch EMF metrics.

Sensitive values never reach it: no header is logged but the user agent, and the values of
configured query keys are replaced before the query is written anywhere.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
SENSITIVE_QUERY_KEYS = frozenset(
    {"access_token", "id_token", "token", "api_key", "apikey", "password", "secret", "signature"}
)
REDACTED = "REDACTED"
EMF_NAMESPACE_ENV = "GATEWAY_EMF_NAMESPACE"


def _split_env(name: str) -> frozenset[str]:
    return frozenset(p.strip().lower() for p in os.environ.get(name, "").split(",") if p.strip())


class Redactor:
    def __init__(self, headers: Iterable[str] = (), query_keys: Iterable[str] = ()) -> None:
        self.headers = SENSITIVE_HEADERS | {h.lower() for h in headers}
        self.query_keys = SENSITIVE_QUERY_KEYS | {k.lower() for k in query_keys}

    @classmethod
    def from_env(cls) -> Redactor:
        return cls(_split_env("GATEWAY_REDACT_HEADERS"), _split_env("GATEWAY_REDACT_QUERY"))

    def query(self, raw: bytes) -> str:
        if not raw:
            return ""
        parts = []
        for part in raw.decode("latin-1").split("&"):
            key, sep, _ = part.partition("=")
            parts.append(f"{key}={REDACTED}" if sep and key.lower() in self.query_keys else part)
        return "&".join(parts)


class AccessLog:
    """Writes each record as one JSON line to `sink` (stdout by default)."""

    def __init__(self, sink: Callable[[str], None] | None = None, *, emf: bool = False) -> None:
        self.sink = sink or _stdout
        self.emf = emf
        self.namespace = os.environ.get(EMF_NAMESPACE_ENV, "StranglerGateway")

    @classmethod
    def from_env(cls) -> AccessLog | None:
        if os.environ.get("GATEWAY_ACCESS_LOG", "on").lower() in ("off", "0", "false"):
            return None
        return cls(emf=bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")))

    def write(self, record: dict[str, Any]) -> None:
        if self.emf and record.get("route") and record.get("target"):
            record["_aws"] = self._emf_block()
            record["Requests"] = 1
            record["Errors5xx"] = 1 if record["status"] >= 500 else 0
            record["Latency"] = record["duration_ms"]
        self.sink(json.dumps(record, separators=(",", ":")))

    def _emf_block(self) -> dict[str, Any]:
        return {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": self.namespace,
                    "Dimensions": [["route", "target"]],
                    "Metrics": [
                        {"Name": "Requests", "Unit": "Count"},
                        {"Name": "Errors5xx", "Unit": "Count"},
                        {"Name": "Latency", "Unit": "Milliseconds"},
                    ],
                }
            ],
        }


def shadow_record(route: str, outcome: str, mismatched: bool) -> str:
    """One EMF line for one shadow copy on Lambda: `ShadowCopies` by route and outcome, and
    `ParityMismatches` by route (the twins of gateway_shadow_copies_total and
    gateway_parity_mismatches_total in /_gateway/metrics)."""
    namespace = os.environ.get(EMF_NAMESPACE_ENV, "StranglerGateway")
    directives = [
        {
            "Namespace": namespace,
            "Dimensions": [["route", "outcome"]],
            "Metrics": [{"Name": "ShadowCopies", "Unit": "Count"}],
        },
        {
            "Namespace": namespace,
            "Dimensions": [["route"]],
            "Metrics": [{"Name": "ParityMismatches", "Unit": "Count"}],
        },
    ]
    record = {
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": directives},
        "route": route,
        "outcome": outcome,
        "ShadowCopies": 1,
        "ParityMismatches": 1 if mismatched else 0,
    }
    return json.dumps(record, separators=(",", ":"))


def state_record(round_trips: int, unavailable: int, seconds: float) -> str:
    """One EMF line for one Lambda invocation's Redis use (`state:`), by function:
    `StateRoundTrips`, `StateUnavailable` and `StateLatency` (ms, the round trips' mean),
    the twins of gateway_state_call_duration_seconds and gateway_state_unavailable_total,
    which a Lambda environment cannot be scraped for."""
    namespace = os.environ.get(EMF_NAMESPACE_ENV, "StranglerGateway")
    metrics = [
        {"Name": "StateRoundTrips", "Unit": "Count"},
        {"Name": "StateUnavailable", "Unit": "Count"},
        {"Name": "StateLatency", "Unit": "Milliseconds"},
    ]
    record = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {"Namespace": namespace, "Dimensions": [["function"]], "Metrics": metrics}
            ],
        },
        "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "gateway"),
        "StateRoundTrips": round_trips,
        "StateUnavailable": unavailable,
        "StateLatency": round(seconds / round_trips * 1000, 3) if round_trips else 0.0,
    }
    return json.dumps(record, separators=(",", ":"))


def emit(line: str) -> None:
    """A line to stdout, where Lambda's log (and so EMF) reads it."""
    _stdout(line)


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
