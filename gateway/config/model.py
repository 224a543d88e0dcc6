"""The route table's data model: frozen objects built once from routes.yaml.

`load_config` (and `parse_config` for text read from S3 or SSM) is the only way to build a
`GatewayConfig`; `gateway.config.load` does every check and raises one `ConfigError`
listing all problems with file, line and field.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.parity.spec import ShadowSpec

BreakerCount = Literal["gateway_errors", "5xx"]
GATEWAY_ERRORS = frozenset({502, 503, 504})
_MAX_EXPONENT = 64  # past this, base * 2**n overflows a float long before it matters

DEFAULT_TIMEOUT = 30.0
RESERVED_PREFIX = "/_gateway"


IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_rate: float = 0.5
    min_requests: int = 20
    consecutive_failures: int = 5
    window: float = 10.0
    open_for: float = 5.0
    half_open_probes: int = 3
    count: BreakerCount = "gateway_errors"

    def failed(self, status: int) -> bool:
        """Whether an upstream's answer with `status` counts as a failure."""
        return status >= 500 if self.count == "5xx" else status in GATEWAY_ERRORS

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.count not in ("gateway_errors", "5xx"):
            problems.append(f"count must be gateway_errors or 5xx, not {self.count!r}")
        if not 0 < self.failure_rate <= 1:
            problems.append(f"failure_rate must be in (0, 1], not {self.failure_rate}")
        if self.min_requests < 1 or self.consecutive_failures < 1 or self.half_open_probes < 1:
            problems.append("min_requests, consecutive_failures, half_open_probes must be >= 1")
        if not self.window > 0 or self.open_for < 0:
            problems.append("window must be positive and open_for not negative")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 2
    """Total tries, the first included: 1 means never retry."""
    methods: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS"})
    statuses: frozenset[int] = frozenset({502, 503, 504})
    backoff: float = 0.025
    backoff_max: float = 0.25
    budget: float = 0.2
    min_retries_per_second: float = 3.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.attempts < 1:
            problems.append(f"attempts must be at least 1, not {self.attempts}")
        if self.backoff < 0 or self.backoff_max < 0:
            problems.append("backoff and backoff_max must not be negative")
        if self.budget < 0 or self.min_retries_per_second < 0:
            problems.append("budget and min_retries_per_second must not be negative")
        if problems:
            raise ValueError("; ".join(problems))

    def retryable_method(self, method: str) -> bool:
        return method.upper() in self.methods

    def retryable_status(self, status: int) -> bool:
        return status in self.statuses

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to sleep before retry `attempt` (0 for the first): full-jitter backoff.

        Uniform over [0, min(backoff_max, backoff * 2**attempt)], so that clients which failed
        together do not come back together.
        """
        if attempt < 0:
            raise ValueError(f"attempt must not be negative, not {attempt}")
        ceiling = min(self.backoff_max, self.backoff * 2 ** min(attempt, _MAX_EXPONENT))
        if rng is None:
            return random.uniform(0.0, ceiling)
        return rng.uniform(0.0, ceiling)


# Connect errors are always retried (the request never left); statuses only when listed.
NO_RETRY_STATUSES = RetryPolicy(statuses=frozenset())


@dataclass(frozen=True, slots=True)
class Protection:
    """How a target is protected and protects itself: timeouts, retries, breaker, limit."""

    connect_timeout: float = 5.0
    retry: RetryPolicy = NO_RETRY_STATUSES
    breaker: BreakerPolicy | None = BreakerPolicy()
    max_concurrency: int | None = None
    queue_timeout: float = 1.0


@dataclass(frozen=True, slots=True)
class HttpTarget:
    name: str
    url: str
    timeout: float = DEFAULT_TIMEOUT
    protection: Protection = Protection()
    kind: Literal["http"] = "http"


@dataclass(frozen=True, slots=True)
class LambdaTarget:
    name: str
    function: str
    timeout: float = DEFAULT_TIMEOUT
    region: str | None = None
    endpoint_url: str | None = None
    protection: Protection = Protection()
    kind: Literal["lambda"] = "lambda"


Target = HttpTarget | LambdaTarget


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where a request's key comes from, for `sticky` and `rate_key` alike: `client` (its
    address), `header:NAME`, `cookie:NAME` or `jwt:sub` (the token's subject)."""

    source: Literal["client", "header", "cookie", "jwt"]
    name: str = ""

    def __str__(self) -> str:
        return self.source if self.source == "client" else f"{self.source}:{self.name}"


CLIENT_KEY = KeySource("client")


@dataclass(frozen=True, slots=True)
class RateSpec:
    """A token bucket per key: `per_second` refill, `burst` capacity."""

    per_second: float
    burst: int
    key: KeySource = CLIENT_KEY


@dataclass(frozen=True, slots=True)
class JwtSpec:
    issuer: str
    audience: str | None = None
    jwks_url: str | None = None
    jwks_file: str | None = None
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApiKeySpec:
    header: str
    key_hashes: frozenset[str]


AuthSpec = JwtSpec | ApiKeySpec

# `auth.max_failures` when not given: 10 failed authentications, then one more every 6 s.
DEFAULT_MAX_FAILURES = RateSpec(per_second=10 / 60, burst=10)


@dataclass(frozen=True, slots=True)
class AdminSpec:
    """Who may read /_gateway (health aside): a credential and/or client networks; both
    when both are given. Without an `admin:` block, only clients on loopback."""

    auth: AuthSpec | None = None
    networks: tuple[str, ...] = ()
    failures: RateSpec | None = DEFAULT_MAX_FAILURES


@dataclass(frozen=True, slots=True)
class LimitsSpec:
    max_body: int | None = None
    max_url: int = 8192
    max_headers: int = 100
    max_header_bytes: int = 16384


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    """A target's cumulative counters when a rollout step began; the step's numbers are the
    deltas from it. `buckets` are the latency histogram's (upper bound, cumulative count)."""

    target: str
    requests: float = 0.0
    errors: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Where a rollout stands; written back into routes.yaml by the controller."""

    step: int = 0
    started_at: float = 0.0
    status: str = "running"  # running | paused | done | rolled_back | aborted
    verdict: str = ""
    snapshot: tuple[CounterSnapshot, ...] = ()


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    target: str
    steps: tuple[float, ...]
    interval: float
    min_requests: int = 100
    max_error_rate: float = 0.01
    max_p99: float | None = None
    max_p99_ratio: float | None = None
    state: RolloutState = RolloutState()
    min_parity: float | None = None
    """A share: a step advances only with shadow parity over the step at or above it."""
    min_compared: int = 50
    """Pairs compared over the step before parity is judged."""


Stage = Literal["legacy", "shadow", "canary", "new", "retired"]
STAGES: tuple[Stage, ...] = ("legacy", "shadow", "canary", "new", "retired")


@dataclass(frozen=True, slots=True)
class MigrationSpec:
    """Where a route stands in the migration, and the evidence its next move needs."""

    stage: Stage | None = None  # None: derived from the route (gateway/config/stages.py)
    shadow_target: str | None = None  # the candidate a `shadow:` block copies to
    min_parity: float = 0.995
    min_compared: int = 50
    retire_after: float = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    path: str
    split: tuple[tuple[str, float], ...]
    methods: frozenset[str] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    sticky: KeySource | None = None
    rewrite: str | None = None
    line: int = 0
    fallback: str | None = None
    fallback_on: frozenset[int] = frozenset()
    rate: RateSpec | None = None
    auth: AuthSpec | None = None
    limits: LimitsSpec = LimitsSpec()
    baseline: str | None = None
    rollout: RolloutSpec | None = None
    # Failed authentications a client may have (a token bucket); None: not counted.
    auth_failures: RateSpec | None = None
    # The candidate that gets a copy of the route's requests, its answers compared (parity).
    shadow: ShadowSpec | None = None
    migration: MigrationSpec = MigrationSpec()

    @property
    def conditions(self) -> int:
        """How many method/header conditions the route adds to its path (the tie-breaker)."""
        return (1 if self.methods is not None else 0) + len(self.headers)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.split)


OnUnavailable = Literal["local", "closed"]


@dataclass(frozen=True, slots=True)
class StateSettings:
    """The `state:` block (config/state.py reads it)."""

    redis: str
    prefix: str = "gw:"
    timeout: float = 0.05
    """The longest one Redis call may take, in seconds."""
    on_unavailable: OnUnavailable = "local"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    targets: Mapping[str, Target]
    routes: tuple[Route, ...]
    source: str = "<memory>"
    version: str = ""
    raw: str = field(default="", repr=False, compare=False)
    trusted_proxies: tuple[str, ...] = ()
    admin: AdminSpec | None = None
    state: StateSettings | None = None
    """Where the fleet's shared protection state lives; None: every limit per process."""
    legacy: str | None = None  # the top-level `legacy:`: the monolith's target name


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    source: str
    line: int
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.where}: {self.message}"


class ConfigError(Exception):
    """Every problem found in one config file; the config is refused as a whole."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        count = len(problems)
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in config:\n{lines}")


def base_dir(source: str) -> Path:
    """Where a relative `jwks_file` is found: beside the routes.yaml, else the working dir."""
    path = Path(source)
    return path.parent if path.is_file() else Path()
