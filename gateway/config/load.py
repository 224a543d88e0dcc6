"""routes.yaml -> GatewayConfig, with every check and every problem's file:line:field."""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import math
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from gateway.config import admin as config_admin
from gateway.config import bounds, sections, stages
from gateway.config.check import Checker, key_line, node_line
from gateway.config.model import (
    RESERVED_PREFIX,
    ConfigError,
    ConfigProblem,
    GatewayConfig,
    KeySource,
    Route,
    Target,
)
from gateway.config.shadow import shadow_section
from gateway.config.state_block import read_state
from gateway.config.targets import NAME_RE, read_targets

TOP_KEYS = ("targets", "routes", "trusted_proxies", "admin", "state", "legacy")
ROUTE_KEYS = (
    "name", "path", "methods", "headers", "split", "target", "sticky", "rewrite",
    "fallback", "fallback_on", "rate", "burst", "rate_key", "auth", "limits",
    "baseline", "rollout", *stages.MIGRATION_KEYS,
)  # fmt: skip
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
WEIGHT_TOLERANCE = 1e-6


def load_config(path: str) -> GatewayConfig:
    """Read and check a routes.yaml; raise `ConfigError` listing every problem."""
    return load_file(path)


def parse_config(text: str, source: str) -> GatewayConfig:
    """Check routes.yaml text read from elsewhere (S3, SSM); `source` names it in errors."""
    return load_text(text, source)


def load_file(path: str) -> GatewayConfig:
    return load_text(read_bounded(path), path)


def read_bounded(path: str) -> str:
    """The file's text, read no further than the size cap allows (a 10 GB file costs 4 MiB)."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(bounds.max_bytes() + 1)
        text = bounds.decode_capped(data)
    except (OSError, UnicodeDecodeError) as exc:
        reason = bounds.excerpt(str(exc))
        raise ConfigError([ConfigProblem(path, 0, "file", f"cannot read: {reason}")]) from exc
    return text


def load_text(text: str, source: str) -> GatewayConfig:
    checker = Checker(source)
    too_large = bounds.size_problem(len(text.encode("utf-8", "surrogatepass")))
    if too_large is not None:
        raise ConfigError([ConfigProblem(source, 0, "file", too_large)])
    document = _parse_yaml(text, checker)
    if checker.problems:
        raise ConfigError(checker.problems)
    too_costly = bounds.expansion_problem(document)
    if too_costly is not None:
        message, key = too_costly
        where = bounds.excerpt(str(key), 40) if key is not None else "yaml"
        raise ConfigError([ConfigProblem(source, key_line(document, key), where, message)])
    if not isinstance(document, CommentedMap):
        checker.problem(node_line(document), "config", "must be a mapping with targets and routes")
        raise ConfigError(checker.problems)
    checker.unknown_keys(document, TOP_KEYS, "config")
    targets = read_targets(document, checker)
    routes = _routes(document, targets, checker)
    trusted = _trusted_proxies(document, checker)
    admin = config_admin.admin(document, checker)
    state = read_state(document, checker)
    legacy = _legacy(document, targets, checker)
    stages.check_stages(routes, legacy, targets, checker)
    if checker.problems:
        raise ConfigError(checker.problems)
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return GatewayConfig(
        MappingProxyType(targets),
        tuple(routes),
        source,
        version,
        text,
        trusted,
        admin,
        state=state,
        legacy=legacy,
    )


def _legacy(document: CommentedMap, targets: dict[str, Target], checker: Checker) -> str | None:
    """The top-level `legacy:`: the monolith's target, the one routes migrate away from."""
    name = document.get("legacy")
    if name is None:
        return None
    if not isinstance(name, str) or name not in targets:
        _unknown_target(checker, key_line(document, "legacy"), "legacy", name, targets)
        return None
    return name


def _trusted_proxies(document: CommentedMap, checker: Checker) -> tuple[str, ...]:
    """Addresses (or CIDR blocks) whose X-Forwarded-For is believed: the ALB's subnets."""
    value = document.get("trusted_proxies", [])
    line = key_line(document, "trusted_proxies")
    if not isinstance(value, list):
        checker.problem(line, "trusted_proxies", "a list of addresses or CIDR blocks")
        return ()
    for item in value:
        try:
            # strict, as the gateway reads it: 10.0.0.1/8 is a typo for 10.0.0.0/8 or 10.0.0.1
            ipaddress.ip_network(str(item).strip(), strict=True)
        except ValueError as exc:
            checker.problem(line, "trusted_proxies", f"{bounds.excerpt(str(item))!r}: {exc}")
    return tuple(str(item) for item in value)


def _parse_yaml(text: str, checker: Checker) -> Any:
    yaml = YAML(typ="rt")
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        checker.problem(line, "yaml", f"{exc.problem or exc.context}".strip())
    except YAMLError as exc:
        checker.problem(0, "yaml", str(exc).strip())
    except Exception as exc:  # ruamel's own failures on odd input (`!!set a`, `? : ?`)
        checker.problem(0, "yaml", f"cannot be read as YAML ({type(exc).__name__}: {exc})")
    return None


def _routes(document: CommentedMap, targets: dict[str, Target], checker: Checker) -> list[Route]:
    node = document.get("routes")
    if not isinstance(node, CommentedSeq) or not node:
        checker.problem(key_line(document, "routes"), "routes", "a list of routes")
        return []
    routes: list[Route] = []
    seen: dict[str, int] = {}
    for index, spec in enumerate(node):
        where = f"routes[{index}]"
        if not isinstance(spec, CommentedMap):
            checker.problem(_item_line(node, index), where, "must be a mapping")
            continue
        name = spec.get("name")
        if isinstance(name, str) and name in seen:
            checker.problem(
                key_line(spec, "name"),
                f"{where}.name",
                f"duplicate route name {name!r} (first at line {seen[name]})",
            )
        elif isinstance(name, str):
            seen[name] = key_line(spec, "name")
        route = _route(spec, where, targets, checker)
        if route is not None:
            routes.append(route)
    return routes


def _item_line(seq: CommentedSeq, index: int) -> int:
    try:
        return int(seq.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return node_line(seq)


def _route(
    spec: CommentedMap, where: str, targets: dict[str, Target], checker: Checker
) -> Route | None:
    before = len(checker.problems)
    checker.unknown_keys(spec, ROUTE_KEYS, where)
    line = node_line(spec)
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        checker.problem(key_line(spec, "name"), f"{where}.name", "a route needs a name")
    else:
        where = f"{where[:-1]}:{name}]"
    path = _path(spec, "path", where, checker, required=True)
    rewrite = _path(spec, "rewrite", where, checker, required=False)
    if path is not None and (path == RESERVED_PREFIX or path.startswith(RESERVED_PREFIX + "/")):
        checker.problem(key_line(spec, "path"), f"{where}.path", f"{RESERVED_PREFIX} is reserved")
    methods = _methods(spec, where, checker)
    headers = _headers(spec, where, checker)
    split = _split(spec, where, targets, checker)
    sticky = _sticky(spec, where, checker)
    fallback = _named_target(spec, "fallback", where, targets, checker)
    baseline = _named_target(spec, "baseline", where, targets, checker)
    if baseline is not None and split and baseline not in dict(split):
        checker.problem(key_line(spec, "baseline"), f"{where}.baseline", "not in the split")
    read = sections.Reader(spec, where, checker)
    fallback_on = read.statuses("fallback_on")
    rate = sections.rate(spec, where, checker)
    auth = sections.auth(spec, where, checker)
    limits = sections.limits(spec, where, checker)
    rollout = sections.rollout(spec, where, checker, split)
    auth_failures = config_admin.auth_failures(spec, where, checker) if auth is not None else None
    shadow = shadow_section(spec, where, targets, split, checker)
    if rollout is not None and rollout.min_parity is not None and "shadow" not in spec:
        checker.problem(
            key_line(spec["rollout"], "min_parity"),
            f"{where}.rollout.min_parity",
            "needs a shadow: block on the route (parity is measured on its copies)",
        )
    migration = stages.read_migration(spec, where, checker, targets)
    if len(checker.problems) > before or path is None or not isinstance(name, str):
        return None
    return Route(
        name, path, split, methods, headers, sticky, rewrite, line,
        fallback, fallback_on, rate, auth, limits, baseline, rollout, auth_failures, shadow,
        migration,
    )  # fmt: skip


def _named_target(
    spec: CommentedMap, key: str, where: str, targets: dict[str, Target], checker: Checker
) -> str | None:
    name = spec.get(key)
    if name is None:
        return None
    if not isinstance(name, str) or name not in targets:
        _unknown_target(checker, key_line(spec, key), f"{where}.{key}", name, targets)
        return None
    return name


def _path(
    spec: CommentedMap, key: str, where: str, checker: Checker, *, required: bool
) -> str | None:
    if key not in spec:
        if required:
            checker.problem(node_line(spec), f"{where}.{key}", "is required")
        return None
    value = spec[key]
    line = key_line(spec, key)
    if not isinstance(value, str) or not value.startswith("/"):
        checker.problem(line, f"{where}.{key}", f"{value!r} must start with '/'")
        return None
    if not value.isascii():
        checker.problem(line, f"{where}.{key}", f"{value!r}: ASCII only (paths are matched raw)")
        return None
    segments = value.strip("/").split("/")
    if any(c in value for c in "?#%\\ ") or "//" in value or {".", ".."} & set(segments):
        checker.problem(
            line, f"{where}.{key}", f"{value!r}: no '?', '#', '%', spaces, '//' or dot segments"
        )
        return None
    return value.rstrip("/") or "/"


def _methods(spec: CommentedMap, where: str, checker: Checker) -> frozenset[str] | None:
    if "methods" not in spec:
        return None
    value = spec["methods"]
    line = key_line(spec, "methods")
    if not isinstance(value, list) or not value:
        checker.problem(line, f"{where}.methods", "a non-empty list such as [GET, POST]")
        return None
    methods = {str(m).upper() for m in value}
    unknown = sorted(methods - METHODS)
    if unknown:
        checker.problem(line, f"{where}.methods", f"unknown method(s): {', '.join(unknown)}")
    return frozenset(methods)


def _headers(spec: CommentedMap, where: str, checker: Checker) -> tuple[tuple[str, str], ...]:
    value = spec.get("headers")
    if value is None:
        return ()
    if not isinstance(value, CommentedMap):
        checker.problem(key_line(spec, "headers"), f"{where}.headers", "a mapping name: value")
        return ()
    pairs: list[tuple[str, str]] = []
    for header, expected in value.items():
        line = key_line(value, header)
        if not isinstance(header, str) or not HEADER_NAME_RE.match(header):
            checker.problem(line, f"{where}.headers", f"{header!r} is not a header name")
        elif not isinstance(expected, str):
            # YAML reads 1.10 as the number 1.1: matching on it would silently never match.
            checker.problem(
                line, f"{where}.headers.{header}", f"quote the value ({expected!r} is not text)"
            )
        else:
            pairs.append((header.lower(), expected))
    return tuple(pairs)


def _split(
    spec: CommentedMap, where: str, targets: dict[str, Target], checker: Checker
) -> tuple[tuple[str, float], ...]:
    line = node_line(spec)
    if ("split" in spec) == ("target" in spec):
        checker.problem(line, where, "needs exactly one of 'split' or 'target'")
        return ()
    if "target" in spec:
        name = spec["target"]
        if not isinstance(name, str) or name not in targets:
            _unknown_target(checker, key_line(spec, "target"), f"{where}.target", name, targets)
            return ()
        return ((name, 100.0),)
    node = spec["split"]
    if not isinstance(node, CommentedMap) or not node:
        checker.problem(key_line(spec, "split"), f"{where}.split", "a mapping target: percent")
        return ()
    split = _weights(node, f"{where}.split", targets, checker)
    total = sum(weight for _, weight in split)
    if split and abs(total - 100.0) > WEIGHT_TOLERANCE:
        checker.problem(
            key_line(spec, "split"), f"{where}.split", f"weights sum to {total:g}, not 100"
        )
    return split


def _weights(
    node: CommentedMap, where: str, targets: dict[str, Target], checker: Checker
) -> tuple[tuple[str, float], ...]:
    split: list[tuple[str, float]] = []
    for name, weight in node.items():
        line = key_line(node, name)
        if name not in targets:
            _unknown_target(checker, line, f"{where}.{name}", name, targets)
            continue
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or not 0 <= weight <= 100
        ):
            checker.problem(line, f"{where}.{name}", f"{weight!r} is not a percentage 0..100")
            continue
        split.append((name, float(weight)))
    return tuple(split)


def _unknown_target(
    checker: Checker, line: int, where: str, name: object, targets: dict[str, Target]
) -> None:
    if checker.full:
        return
    guess = difflib.get_close_matches(str(name), list(targets), n=1)
    hint = f" (did you mean '{guess[0]}'?)" if guess else ""
    checker.problem(line, where, f"unknown target {name!r}{hint}")


def _sticky(spec: CommentedMap, where: str, checker: Checker) -> KeySource | None:
    value = spec.get("sticky")
    if value is None:
        return None
    key = sections.key_source(value)
    if isinstance(key, str):
        checker.problem(key_line(spec, "sticky"), f"{where}.sticky", key)
        return None
    if key.source == "jwt" and "auth" not in spec:
        checker.problem(
            key_line(spec, "sticky"), f"{where}.sticky", "jwt:sub needs the route's auth"
        )
    return key
