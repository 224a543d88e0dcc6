"""A route's `shadow:` block, read once into frozen data, and the rule for copying a request.

shadow:
  target: orders-v2
  percent: 25                 # default 100, fractions allowed
  methods: [GET, HEAD]        # default GET, HEAD, OPTIONS
  writes: never               # never | sandbox | idempotency-key
  max_body: 1MB
  timeout: 5s
  compare:
    headers: [content-type]   # status is always compared
    ignore: [body.meta.request_id]
    noise: 5%
    relative_threshold: 20%   # Diffy's rule, both thresholds configurable
    absolute_threshold: 0.03%
    window: 15m
    min_compared: 50
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar, cast

from gateway.config.units import parse_percent, parse_positive_duration, parse_size
from gateway.parity.paths import path_problem

Writes = Literal["never", "sandbox", "idempotency-key"]
Problem = tuple[str, str]
T = TypeVar("T")

WRITES: tuple[Writes, ...] = ("never", "sandbox", "idempotency-key")
SAFE_METHODS: tuple[str, ...] = ("GET", "HEAD", "OPTIONS")
SHADOW_KEYS = frozenset(
    {"target", "percent", "methods", "writes", "max_body", "timeout", "compare"}
)
COMPARE_KEYS = frozenset(
    {
        "headers",
        "ignore",
        "noise",
        "relative_threshold",
        "absolute_threshold",
        "window",
        "min_compared",
    }
)


@dataclass(frozen=True, slots=True)
class CompareSpec:
    headers: tuple[str, ...] = ("content-type",)
    ignore: tuple[str, ...] = ()
    noise: float = 0.05
    relative_threshold: float = 0.20
    absolute_threshold: float = 0.0003
    window: float = 900.0
    min_compared: int = 50


@dataclass(frozen=True, slots=True)
class ShadowSpec:
    target: str
    percent: float = 1.0
    """A share 0..1 of the route's requests copied (the YAML says 25 for a quarter)."""
    methods: tuple[str, ...] = SAFE_METHODS
    writes: Writes = "never"
    max_body: int = 1_000_000
    timeout: float = 5.0
    compare: CompareSpec = field(default_factory=CompareSpec)


def should_copy(spec: ShadowSpec, method: str, headers: Mapping[str, str], draw: float) -> bool:
    """Whether this request goes to the candidate too; `draw` is uniform in [0, 1).

    `headers` are keyed in lower case. `methods` chooses among the reads (GET, HEAD,
    OPTIONS); a write is copied only to a sandbox (which gets every method), or when it
    carries an Idempotency-Key under `writes: idempotency-key`; `writes: never` never copies one.
    """
    method = method.upper()
    if draw >= spec.percent:
        return False
    if spec.writes == "sandbox":
        return True
    if method in SAFE_METHODS:
        return method in spec.methods
    return spec.writes == "idempotency-key" and bool(headers.get("idempotency-key"))


def should_sample_noise(spec: ShadowSpec, draw: float) -> bool:
    """Whether a copied request also goes to the primary a second time (`compare.noise`)."""
    return draw < spec.compare.noise


def parse_shadow(raw: object) -> tuple[ShadowSpec | None, list[Problem]]:
    """The block as data, or None with every problem found as (field, message)."""
    problems: list[Problem] = []
    if not isinstance(raw, Mapping):
        return None, [("shadow", "must be a mapping with at least a target")]
    _unknown(raw, SHADOW_KEYS, "shadow", problems)
    target = raw.get("target")
    if not isinstance(target, str) or not target:
        problems.append(("shadow.target", "names the candidate target; it is required"))
    get = _reader(raw, "shadow", problems)
    percent = get("percent", parse_percent, 1.0)
    methods = get("methods", _methods, SAFE_METHODS)
    writes: Writes = get("writes", _writes, "never")
    max_body = get("max_body", _size, 1_000_000)
    timeout = get("timeout", parse_positive_duration, 5.0)
    compare = _compare(raw.get("compare", {}), problems)
    if problems or compare is None:
        return None, problems
    spec = ShadowSpec(cast(str, target), percent, methods, writes, max_body, timeout, compare)
    return spec, []


def _compare(raw: object, problems: list[Problem]) -> CompareSpec | None:
    if not isinstance(raw, Mapping):
        problems.append(("shadow.compare", "must be a mapping"))
        return None
    _unknown(raw, COMPARE_KEYS, "shadow.compare", problems)
    get = _reader(raw, "shadow.compare", problems)
    default = CompareSpec()
    return CompareSpec(
        headers=get("headers", _headers, default.headers),
        ignore=get("ignore", _ignore, default.ignore),
        noise=get("noise", parse_percent, default.noise),
        relative_threshold=get("relative_threshold", parse_percent, default.relative_threshold),
        absolute_threshold=get("absolute_threshold", parse_percent, default.absolute_threshold),
        window=get("window", parse_positive_duration, default.window),
        min_compared=get("min_compared", _count, default.min_compared),
    )


def _reader(
    raw: Mapping[object, object], where: str, problems: list[Problem]
) -> Callable[[str, Callable[[object], T], T], T]:
    def get(key: str, parse: Callable[[object], T], default: T) -> T:
        if key not in raw:
            return default
        try:
            return parse(raw[key])
        except ValueError as exc:
            problems.append((f"{where}.{key}", str(exc)))
            return default

    return get


def _unknown(
    raw: Mapping[object, object], known: frozenset[str], where: str, problems: list[Problem]
) -> None:
    for key in raw:
        if key not in known:
            problems.append((f"{where}.{key}", f"unknown key (known: {', '.join(sorted(known))})"))


def _strings(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{value!r} is not a list of {what}")
    return tuple(cast(list[str], value))


def _methods(value: object) -> tuple[str, ...]:
    methods = tuple(m.upper() for m in _strings(value, "methods"))
    if not methods or not all(m.isalpha() for m in methods):
        raise ValueError(f"{value!r} is not a list of HTTP methods")
    return methods


def _writes(value: object) -> Writes:
    if value not in WRITES:
        raise ValueError(f"{value!r} is not one of {', '.join(WRITES)}")
    return value


def _headers(value: object) -> tuple[str, ...]:
    return tuple(h.lower() for h in _strings(value, "header names"))


def _ignore(value: object) -> tuple[str, ...]:
    paths = _strings(value, "field paths")
    for path in paths:
        problem = path_problem(path)
        if problem:
            raise ValueError(problem)
    return paths


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{value!r} is not a positive whole number")
    return value


def _size(value: object) -> int:
    return parse_size(value, least=1)
