"""The optional sections of routes.yaml: target protection, route policies, rollouts.

Each reader takes the YAML node, records every problem on the checker with its line, and
returns the frozen object (or a default when the section is absent or wrong).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ruamel.yaml.comments import CommentedMap

from gateway.config import rollout_state
from gateway.config.bounds import excerpt
from gateway.config.check import Checker, key_line
from gateway.config.model import (
    CLIENT_KEY,
    IDEMPOTENT_METHODS,
    NO_RETRY_STATUSES,
    ApiKeySpec,
    AuthSpec,
    BreakerCount,
    BreakerPolicy,
    CounterSnapshot,
    JwtSpec,
    KeySource,
    LimitsSpec,
    Protection,
    RateSpec,
    RetryPolicy,
    RolloutSpec,
    RolloutState,
    base_dir,
)
from gateway.config.units import parse_duration, parse_rate, parse_share, parse_size

P = TypeVar("P")

PROTECTION_KEYS = ("connect_timeout", "retry", "breaker", "max_concurrency", "queue_timeout")
RETRY_KEYS = ("attempts", "on", "methods", "budget")
BREAKER_KEYS = (
    "failure_rate",
    "min_requests",
    "consecutive_failures",
    "window",
    "open_for",
    "probes",
    "count",
)
LIMIT_KEYS = ("max_body", "max_url", "max_headers", "max_header_bytes")
ROLLOUT_KEYS = (
    "target", "steps", "interval", "min_requests", "max_error_rate", "max_p99", "state",
    "min_parity", "min_compared",
)  # fmt: skip
STATE_KEYS = ("step", "started_at", "status", "verdict", "snapshot")
SNAPSHOT_KEYS = ("requests", "errors", "buckets")
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 scope-token
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_safe_url(url: str) -> bool:
    """https, or http to this machine only: keys fetched in clear text could be swapped."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return bool(host) and (
        parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS)
    )


class Reader:
    """Typed reads of one mapping's values, each problem recorded with its line."""

    def __init__(self, node: CommentedMap, where: str, checker: Checker) -> None:
        self.node, self.where, self.checker = node, where, checker

    def fail(self, key: str, message: str) -> None:
        self.checker.problem(key_line(self.node, key), f"{self.where}.{key}", message)

    def duration(self, key: str, default: float) -> float:
        if key not in self.node:
            return default
        try:
            value = parse_duration(self.node[key])
        except ValueError as exc:
            self.fail(key, str(exc))
            return default
        if value <= 0:
            self.fail(key, "must be more than zero")
        return value

    def integer(self, key: str, default: int, low: int = 1) -> int:
        value = self.node.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.fail(key, f"{value!r} is not a whole number >= {low}")
            return default
        return value

    def fraction(self, key: str, default: float) -> float:
        """A share written 50% or 0.5."""
        value = self.node.get(key, default)
        try:
            return parse_share(value)
        except ValueError as exc:
            self.fail(key, str(exc))
            return default

    def size(self, key: str, default: int | None) -> int | None:
        if key not in self.node:
            return default
        try:
            return parse_size(self.node[key])
        except ValueError as exc:
            self.fail(key, str(exc))
            return default

    def statuses(self, key: str) -> frozenset[int]:
        value = self.node.get(key, [])
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 400 <= v <= 599 for v in value
        ):
            self.fail(key, f"{value!r}: a list of HTTP statuses 400..599")
            return frozenset()
        return frozenset(value)

    def mapping(self, key: str) -> CommentedMap | None:
        value = self.node.get(key)
        if value is None:
            return None
        if not isinstance(value, CommentedMap):
            self.fail(key, "must be a mapping")
            return None
        return value

    def section(self, key: str, allowed: tuple[str, ...]) -> Reader | None:
        """A reader for the nested mapping at `key`, its unknown keys already reported."""
        node = self.mapping(key)
        if node is None:
            return None
        where = f"{self.where}.{key}"
        self.checker.unknown_keys(node, allowed, where)
        return Reader(node, where, self.checker)

    def text(self, key: str) -> str | None:
        value = self.node.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.fail(key, "must be a non-empty string")
            return None
        return value


def protection(spec: CommentedMap, timeout: float, where: str, checker: Checker) -> Protection:
    read = Reader(spec, where, checker)
    return Protection(
        connect_timeout=read.duration("connect_timeout", min(timeout, 5.0)),
        retry=_retry(read),
        breaker=_breaker(read),
        max_concurrency=read.integer("max_concurrency", 0) or None
        if "max_concurrency" in spec
        else None,
        queue_timeout=read.duration("queue_timeout", 1.0),
    )


def _retry(parent: Reader) -> RetryPolicy:
    read = parent.section("retry", RETRY_KEYS)
    if read is None:
        return NO_RETRY_STATUSES
    methods = read.node.get("methods")
    method_set = IDEMPOTENT_METHODS
    if methods is not None:
        if not isinstance(methods, list) or not methods:
            read.fail("methods", "a list such as [GET, HEAD]")
        else:
            method_set = frozenset(str(m).upper() for m in methods)
    return _policy(
        parent,
        "retry",
        NO_RETRY_STATUSES,
        lambda: RetryPolicy(
            attempts=read.integer("attempts", 2),
            methods=method_set,
            statuses=read.statuses("on"),
            budget=read.fraction("budget", 0.2),
        ),
    )


def _breaker(parent: Reader) -> BreakerPolicy | None:
    value = parent.node.get("breaker")
    if value is False or value == "off":
        return None
    read = parent.section("breaker", BREAKER_KEYS)
    if read is None:
        return BreakerPolicy()
    return _policy(
        parent,
        "breaker",
        BreakerPolicy(),
        lambda: BreakerPolicy(
            failure_rate=read.fraction("failure_rate", 0.5),
            min_requests=read.integer("min_requests", 20),
            consecutive_failures=read.integer("consecutive_failures", 5),
            window=read.duration("window", 10.0),
            open_for=read.duration("open_for", 5.0),
            half_open_probes=read.integer("probes", 3),
            count=_breaker_count(read),
        ),
    )


def _breaker_count(read: Reader) -> BreakerCount:
    """What the breaker counts as a failure: gateway_errors (502/503/504, timeouts,
    connection failures; the default) or 5xx (every 5xx answer, 500 included)."""
    value = read.node.get("count", "gateway_errors")
    if value == "5xx":
        return "5xx"
    if value != "gateway_errors":
        read.fail("count", f"{value!r}: gateway_errors (502/503/504, timeouts) or 5xx")
    return "gateway_errors"


def _policy(parent: Reader, key: str, default: P, build: Callable[[], P]) -> P:
    """The policy `build` makes, or a problem on `key` for what the policy itself refuses
    (a failure_rate of 0, say) rather than a traceback when the gateway starts."""
    try:
        return build()
    except ValueError as exc:
        parent.fail(key, str(exc))
        return default


def rate(spec: CommentedMap, where: str, checker: Checker) -> RateSpec | None:
    read = Reader(spec, where, checker)
    value = spec.get("rate")
    if value is None:
        for key in ("burst", "rate_key"):
            if key in spec:
                read.fail(key, "goes with 'rate'")
        return None
    try:
        per_second = parse_rate(value)
    except ValueError as exc:
        read.fail("rate", str(exc))
        return None
    burst = read.integer("burst", max(1, round(per_second)))
    found_key = key_source(spec.get("rate_key", "client"))
    if isinstance(found_key, str):
        read.fail("rate_key", found_key)
        return RateSpec(per_second, burst)
    return RateSpec(per_second, burst, found_key)


def key_source(value: object) -> KeySource | str:
    """`client`, `header:NAME`, `cookie:NAME` or `jwt:sub` read; else why not. Header names
    are case-insensitive (kept lower-case); cookie names are not."""
    text = str(value)
    source, _, name = text.partition(":")
    if text == "client":
        return CLIENT_KEY
    if text == "jwt:sub":
        return KeySource("jwt", "sub")
    if source == "header" and name and HEADER_NAME.fullmatch(name):
        return KeySource("header", name.lower())
    if source == "cookie" and name and HEADER_NAME.fullmatch(name):
        return KeySource("cookie", name)
    return f"{excerpt(text)!r}: expected client, header:NAME, cookie:NAME or jwt:sub"


def auth(spec: CommentedMap, where: str, checker: Checker) -> AuthSpec | None:
    parent = Reader(spec, where, checker)
    node = parent.mapping("auth")
    if node is None:
        return None
    where = f"{where}.auth"
    checker.unknown_keys(node, ("jwt", "api_keys", "max_failures"), where)
    if ("jwt" in node) == ("api_keys" in node):
        parent.fail("auth", "needs exactly one of 'jwt' or 'api_keys'")
        return None
    read = Reader(node, where, checker)
    if "jwt" in node:
        jwt = read.mapping("jwt")
        return jwt_block(Reader(jwt, f"{where}.jwt", checker)) if jwt is not None else None
    keys = read.mapping("api_keys")
    return api_keys_block(Reader(keys, f"{where}.api_keys", checker)) if keys is not None else None


def jwt_block(read: Reader) -> JwtSpec | None:
    read.checker.unknown_keys(
        read.node, ("issuer", "audience", "jwks_url", "jwks_file", "scopes"), read.where
    )
    issuer = read.text("issuer")
    if issuer is None:
        read.fail("issuer", "is required")
        return None
    url, file = read.text("jwks_url"), read.text("jwks_file")
    if (url is None) == (file is None):
        read.fail("jwks_url", "needs exactly one of jwks_url or jwks_file")
        return None
    scopes = _scopes(read)
    if not _jwks_source_ok(read, url, file) or scopes is None:
        return None
    return JwtSpec(issuer, read.text("audience"), url, file, scopes)


def _jwks_source_ok(read: Reader, url: str | None, file: str | None) -> bool:
    if url is not None and not is_safe_url(url):
        read.fail("jwks_url", f"{excerpt(url)!r}: must be https (http only to loopback)")
        return False
    if file is not None and (why := _jwks_file_problem(file, read.checker.source)):
        read.fail("jwks_file", why)
        return False
    return True


def _scopes(read: Reader) -> tuple[str, ...] | None:
    scopes = read.node.get("scopes", [])
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        read.fail("scopes", "a list of scope names")
        return None
    bad = [scope for scope in scopes if not SCOPE_TOKEN.fullmatch(scope)]
    if bad:
        read.fail("scopes", f"{excerpt(bad[0])!r} is not a scope (no spaces, quotes or '\\')")
        return None
    return tuple(scopes)


def _jwks_file_problem(file: str, source: str) -> str | None:
    """What stops the gateway from reading the keys, checked as it would at start."""
    # cold start: PyJWT (and its crypto) only for tables that name a JWKS file
    from gateway.config.jwks_file import check_jwks_file

    return check_jwks_file(base_dir(source) / file)


def api_keys_block(read: Reader) -> ApiKeySpec | None:
    read.checker.unknown_keys(read.node, ("header", "keys"), read.where)
    keys = read.node.get("keys")
    if not isinstance(keys, list) or not keys:
        read.fail("keys", "a list of key hashes (sha256:<hex>), never the keys themselves")
        return None
    bad = [k for k in keys if not re.fullmatch(r"sha256:[0-9a-f]{64}", str(k))]
    if bad:
        read.fail("keys", "store keys as sha256:<64 hex> hashes (gateway hash-key prints one)")
        return None
    header = read.node.get("header", "x-api-key")
    if not isinstance(header, str) or not HEADER_NAME.fullmatch(header):
        read.fail("header", f"{excerpt(str(header))!r} is not a header name")
        return None
    return ApiKeySpec(header.lower(), frozenset(keys))


def limits(spec: CommentedMap, where: str, checker: Checker) -> LimitsSpec:
    read = Reader(spec, where, checker).section("limits", LIMIT_KEYS)
    if read is None:
        return LimitsSpec()
    defaults = LimitsSpec()
    return LimitsSpec(
        max_body=read.size("max_body", None),
        max_url=read.size("max_url", defaults.max_url) or defaults.max_url,
        max_headers=read.integer("max_headers", defaults.max_headers),
        max_header_bytes=read.size("max_header_bytes", defaults.max_header_bytes)
        or defaults.max_header_bytes,
    )


def rollout(spec: CommentedMap, where: str, checker: Checker, split: Any) -> RolloutSpec | None:
    read = Reader(spec, where, checker).section("rollout", ROLLOUT_KEYS)
    if read is None:
        return None
    node = read.node
    target = read.text("target")
    if target is None or target not in dict(split):
        read.fail("target", f"{target!r} must be one of the route's split targets")
        return None
    steps = node.get("steps")
    if (
        not isinstance(steps, list)
        or not steps
        or not all(
            isinstance(s, int | float) and not isinstance(s, bool) and 0 < s <= 100 for s in steps
        )
        or list(steps) != sorted(steps)
    ):
        read.fail("steps", "rising percentages 0 < step <= 100, such as [1, 5, 25, 50, 100]")
        return None
    max_p99, ratio = _p99(read)
    return RolloutSpec(
        target=target,
        steps=tuple(float(s) for s in steps),
        interval=read.duration("interval", 600.0),
        min_requests=read.integer("min_requests", 100, low=0),
        max_error_rate=read.fraction("max_error_rate", 0.01),
        max_p99=max_p99,
        max_p99_ratio=ratio,
        state=_state(read),
        min_parity=read.fraction("min_parity", 0.0) if "min_parity" in node else None,
        min_compared=read.integer("min_compared", 50),
    )


def _p99(read: Reader) -> tuple[float | None, float | None]:
    """`max_p99: 800ms` (absolute) or `max_p99: baseline x 1.5` (relative to the baseline)."""
    value = read.node.get("max_p99")
    if value is None:
        return None, None
    found = re.fullmatch(r"\s*baseline\s*[x×*]\s*(\d+(?:\.\d+)?)\s*", str(value))
    if found:
        return None, float(found.group(1))
    return read.duration("max_p99", 1.0), None


def _state(parent: Reader) -> RolloutState:
    read = parent.section("state", STATE_KEYS)
    if read is None:
        return RolloutState()
    node = read.node
    status = str(node.get("status", "running"))
    if status not in ("running", "paused", "done", "rolled_back", "aborted"):
        read.fail("status", f"{status!r}: running, paused, done, rolled_back or aborted")
    step, started = rollout_state.read(node.get("step"), node.get("started_at"))
    if started is None:
        read.fail("started_at", "an ISO 8601 time such as 2026-12-02T05:00:00Z")
    elif step is None:
        read.fail("step", "the step's number, from 1 (0 with an epoch started_at)")
    return RolloutState(
        step=step or 0,
        started_at=started or 0.0,
        status=status,
        verdict=str(node.get("verdict", "")),
        snapshot=_snapshot(read),
    )


def _snapshot(parent: Reader) -> tuple[CounterSnapshot, ...]:
    """`snapshot: {TARGET: {requests: N, errors: N, buckets: {LE: N, ...}}}`, the controller's."""
    node = parent.mapping("snapshot")
    if node is None:
        return ()
    taken = []
    for target, counts in node.items():
        where = f"{parent.where}.snapshot.{target}"
        buckets = counts.get("buckets", {}) if isinstance(counts, CommentedMap) else None
        numbers = [*buckets.items()] if isinstance(buckets, CommentedMap) else None
        if not isinstance(counts, CommentedMap) or numbers is None:
            line = key_line(node, target)
            parent.checker.problem(line, where, "{requests: N, errors: N, buckets: {LE: N}}")
            continue
        parent.checker.unknown_keys(counts, SNAPSHOT_KEYS, where)
        totals = (counts.get("requests", 0), counts.get("errors", 0))
        if not all(_count(n) for n in (*totals, *(n for pair in numbers for n in pair))):
            parent.checker.problem(key_line(node, target), where, "counts must be numbers >= 0")
            continue
        pairs = tuple(sorted((float(le), float(n)) for le, n in numbers))
        taken.append(CounterSnapshot(str(target), float(totals[0]), float(totals[1]), pairs))
    return tuple(taken)


def _count(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
