"""What the rollout controller and `gateway status` read: each target's requests, 5xx and p99.

Two sources meet one protocol. A running gateway's `/_gateway/metrics` (Prometheus text) gives
cumulative counters: a step's numbers are the deltas from the snapshot taken when the step
began, and its p99 comes from the histogram buckets' deltas. CloudWatch (the EMF metrics the
gateway writes on Lambda) is asked for the step's window directly: Sum of Requests and
Errors5xx, p99 of Latency. Any failure to read is `MetricsUnavailable`: no decision is ever
taken on missing data.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.cli.credentials import admin_headers
from gateway.config.model import CounterSnapshot, RolloutState
from gateway.errors import CommandError

REQUESTS = "gateway_requests_total"
ERRORS = "gateway_errors_5xx_total"
BUCKETS = "gateway_request_duration_seconds_bucket"
METRICS_PATH = "/_gateway/metrics"
SCRAPE_TIMEOUT = 10.0
# GetMetricData query id prefix, EMF metric name, statistic
QUERIES = (("r", "Requests", "Sum"), ("e", "Errors5xx", "Sum"), ("p", "Latency", "p99"))


class MetricsUnavailable(CommandError):
    """The metrics could not be read; the reason says where and why."""


@dataclass(frozen=True, slots=True)
class Window:
    """One target's numbers over a window (a rollout step, or a gateway's lifetime)."""

    requests: float = 0.0
    errors: float = 0.0
    p99: float | None = None  # seconds; None without requests or without data

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class MetricsSource(Protocol):
    description: str

    def snapshot(self, route: str, targets: Sequence[str]) -> tuple[CounterSnapshot, ...]:
        """What to remember when a step begins (nothing for a source that reads windows)."""
        ...

    def step(
        self, route: str, targets: Sequence[str], state: RolloutState, now: float, *, p99: bool
    ) -> tuple[dict[str, Window], tuple[CounterSnapshot, ...]]:
        """Each target's numbers since the step began, and the snapshot for one beginning now.

        Without `p99` the source may leave the p99 out when it costs a query of its own.
        """
        ...


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile of a cumulative histogram, as Prometheus' histogram_quantile has it.

    Linear interpolation inside the bucket the rank falls in (the first bucket starts at 0);
    a rank in the +Inf bucket answers the highest finite bound. None for an empty histogram.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def delta(now: CounterSnapshot, then: CounterSnapshot | None) -> Window:
    """The numbers between two snapshots; a counter that went down was reset (a restart)."""
    if then is None or now.requests < then.requests:
        then = CounterSnapshot(now.target)
    before = dict(then.buckets)
    buckets = [(bound, max(0.0, count - before.get(bound, 0.0))) for bound, count in now.buckets]
    requests = now.requests - then.requests
    p99 = quantile(0.99, buckets) if requests > 0 else None
    return Window(requests, max(0.0, now.errors - then.errors), p99)


def lifetime(counts: CounterSnapshot) -> Window:
    return delta(counts, None)


def parse_prometheus(text: str) -> dict[tuple[str, str], CounterSnapshot]:
    """(route, target) -> the gateway's counters, from its `/_gateway/metrics` text."""
    # cold start: prometheus_client only once metrics are made or read
    from prometheus_client.parser import text_string_to_metric_families

    requests: dict[tuple[str, str], float] = defaultdict(float)
    errors: dict[tuple[str, str], float] = defaultdict(float)
    buckets: dict[tuple[str, str], dict[float, float]] = defaultdict(dict)
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.labels.get("route", ""), sample.labels.get("target", ""))
                if sample.name == REQUESTS:
                    requests[key] += sample.value
                elif sample.name == ERRORS:
                    errors[key] += sample.value
                elif sample.name == BUCKETS:
                    bound = float(sample.labels["le"])
                    buckets[key][bound] = buckets[key].get(bound, 0.0) + sample.value
    except (ValueError, KeyError) as exc:
        raise MetricsUnavailable(f"not Prometheus text: {exc}") from exc
    return {
        key: CounterSnapshot(
            key[1], requests[key], errors[key], tuple(sorted(buckets[key].items()))
        )
        for key in requests.keys() | buckets.keys()
    }


class PrometheusSource:
    """A running gateway's `/_gateway/metrics`, given its base URL."""

    def __init__(
        self, base_url: str, timeout: float = SCRAPE_TIMEOUT, admin_key: str | None = None
    ) -> None:
        self.description = base_url.rstrip("/") + METRICS_PATH
        self._timeout = timeout
        self._headers = admin_headers(admin_key)  # --admin-key > GATEWAY_ADMIN_KEY

    def scrape(self) -> dict[tuple[str, str], CounterSnapshot]:
        # urllib, not httpx: this also runs in the Lambda zip, which carries no httpx.
        request = urllib.request.Request(self.description, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                text = answer.read().decode("utf-8")
        except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "reason", exc)
            raise MetricsUnavailable(f"cannot read {self.description}: {reason}") from exc
        return parse_prometheus(text)

    def snapshot(self, route: str, targets: Sequence[str]) -> tuple[CounterSnapshot, ...]:
        counters = self.scrape()
        return tuple(counters.get((route, t), CounterSnapshot(t)) for t in targets)

    def step(
        self, route: str, targets: Sequence[str], state: RolloutState, now: float, *, p99: bool
    ) -> tuple[dict[str, Window], tuple[CounterSnapshot, ...]]:
        current = self.snapshot(route, targets)
        then = {counts.target: counts for counts in state.snapshot}
        return {c.target: delta(c, then.get(c.target)) for c in current}, current


class CloudWatchSource:
    """The gateway's EMF metrics in CloudWatch: namespace, dimensions route and target."""

    def __init__(self, namespace: str, client: Any = None) -> None:
        self.description = f"cloudwatch:{namespace}"
        self.namespace = namespace
        self._client = client

    def snapshot(self, route: str, targets: Sequence[str]) -> tuple[CounterSnapshot, ...]:
        return ()

    def step(
        self, route: str, targets: Sequence[str], state: RolloutState, now: float, *, p99: bool
    ) -> tuple[dict[str, Window], tuple[CounterSnapshot, ...]]:
        return self.window(route, targets, state.started_at, now, p99=p99), ()

    def window(
        self, route: str, targets: Sequence[str], since: float, until: float, *, p99: bool = True
    ) -> dict[str, Window]:
        """Each target's numbers in [since, until], in whole minutes (EMF's resolution).

        The start is rounded up to a minute, so a step never counts its predecessor's data;
        the end is rounded up, so the minute in progress counts.
        """
        start, end = math.ceil(since / 60) * 60, math.ceil(until / 60) * 60
        if end <= start:
            return {target: Window() for target in targets}
        wanted = QUERIES if p99 else QUERIES[:2]
        answer = self._query(route, targets, start, end, wanted)
        windows = {}
        for index, target in enumerate(targets):
            latency = answer.get(f"p{index}", [])
            windows[target] = Window(
                requests=sum(answer.get(f"r{index}", [])),
                errors=sum(answer.get(f"e{index}", [])),
                p99=max(latency) / 1000 if latency else None,  # EMF Latency is in ms
            )
        return windows

    def _query(
        self,
        route: str,
        targets: Sequence[str],
        start: int,
        end: int,
        wanted: Sequence[tuple[str, str, str]],
        # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
    ) -> Mapping[str, list[float]]:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._client is None:
            # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
            import boto3

            self._client = boto3.session.Session().client("cloudwatch")
        queries = [
            {
                "Id": f"{kind}{index}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": self.namespace,
                        "MetricName": metric,
                        "Dimensions": [
                            {"Name": "route", "Value": route},
                            {"Name": "target", "Value": target},
                        ],
                    },
                    "Period": end - start,
                    "Stat": stat,
                },
            }
            for index, target in enumerate(targets)
            for kind, metric, stat in wanted
        ]
        values: dict[str, list[float]] = defaultdict(list)
        request = {
            "MetricDataQueries": queries,
            "StartTime": datetime.fromtimestamp(start, UTC),
            "EndTime": datetime.fromtimestamp(end, UTC),
        }
        try:
            while True:
                page = self._client.get_metric_data(**request)
                for result in page["MetricDataResults"]:
                    values[result["Id"]] += [v for v in result["Values"] if v is not None]
                if not page.get("NextToken"):
                    return values
                request["NextToken"] = page["NextToken"]
        except (BotoCoreError, ClientError) as exc:
            raise MetricsUnavailable(f"cannot read {self.description}: {exc}") from exc


def metrics_source_for(spec: str, admin_key: str | None = None) -> MetricsSource:
    """`http://host:port` (a gateway's base URL, read with the admin credential) or
    `cloudwatch:NAMESPACE`."""
    if spec.startswith("cloudwatch:"):
        namespace = spec.removeprefix("cloudwatch:")
        if not namespace:
            raise MetricsUnavailable("write cloudwatch:NAMESPACE, e.g. cloudwatch:StranglerGateway")
        return CloudWatchSource(namespace)
    if spec.startswith(("http://", "https://")):
        return PrometheusSource(spec, admin_key=admin_key)
    raise MetricsUnavailable(f"{spec!r}: a gateway's base URL (http://...) or cloudwatch:NAMESPACE")


def percent(share: float) -> str:
    """0.125 -> '12.5%', 0.01 -> '1%'."""
    return f"{share * 100:.2f}".rstrip("0").rstrip(".") + "%"


def latency(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.3g}ms"
    return f"{seconds:.3g}s"
