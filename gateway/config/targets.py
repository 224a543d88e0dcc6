"""The `targets:` section of routes.yaml: HTTP and Lambda targets and their protection."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ruamel.yaml.comments import CommentedMap

from gateway.config import sections
from gateway.config.check import Checker, key_line
from gateway.config.model import DEFAULT_TIMEOUT, HttpTarget, LambdaTarget, Target
from gateway.config.units import parse_duration

HTTP_TARGET_KEYS = ("url", "timeout", *sections.PROTECTION_KEYS)
LAMBDA_TARGET_KEYS = ("lambda", "timeout", "region", "endpoint_url", *sections.PROTECTION_KEYS)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FUNCTION_RE = re.compile(
    r"^(arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:)?"
    r"[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?$"
)


def read_targets(document: CommentedMap, checker: Checker) -> dict[str, Target]:
    node = document.get("targets")
    if not isinstance(node, CommentedMap) or not node:
        checker.problem(key_line(document, "targets"), "targets", "a mapping of target names")
        return {}
    targets: dict[str, Target] = {}
    for name, spec in node.items():
        where = f"targets.{name}"
        line = key_line(node, name)
        if not isinstance(name, str) or not NAME_RE.match(name):
            checker.problem(line, where, "target names are letters, digits, '-', '_' and '.'")
            continue
        if not isinstance(spec, CommentedMap):
            checker.problem(line, where, "must be a mapping with 'url' or 'lambda'")
            continue
        target = _target(name, spec, line, where, checker)
        if target is not None:
            targets[name] = target
    return targets


def _target(
    name: str, spec: CommentedMap, line: int, where: str, checker: Checker
) -> Target | None:
    if ("url" in spec) == ("lambda" in spec):
        checker.problem(line, where, "needs exactly one of 'url' (HTTP) or 'lambda' (function)")
        return None
    timeout = _duration(spec, "timeout", where, checker)
    if "url" in spec:
        checker.unknown_keys(spec, HTTP_TARGET_KEYS, where)
        url = _url(spec, "url", where, checker)
        guard = sections.protection(spec, timeout, where, checker)
        return HttpTarget(name, url, timeout, guard) if url else None
    checker.unknown_keys(spec, LAMBDA_TARGET_KEYS, where)
    function = spec["lambda"]
    if not isinstance(function, str) or not FUNCTION_RE.match(function):
        checker.problem(
            key_line(spec, "lambda"),
            f"{where}.lambda",
            f"{function!r} is not a function name, name:alias or function ARN",
        )
        return None
    region = _optional_str(spec, "region", where, checker)
    endpoint = _url(spec, "endpoint_url", where, checker) if "endpoint_url" in spec else None
    guard = sections.protection(spec, timeout, where, checker)
    return LambdaTarget(name, function, timeout, region, endpoint, guard)


def _duration(spec: CommentedMap, key: str, where: str, checker: Checker) -> float:
    if key not in spec:
        return DEFAULT_TIMEOUT
    try:
        value = parse_duration(spec[key])
    except ValueError as exc:
        checker.problem(key_line(spec, key), f"{where}.{key}", str(exc))
        return DEFAULT_TIMEOUT
    if value <= 0:
        checker.problem(key_line(spec, key), f"{where}.{key}", "must be more than zero")
    return value


def _url(spec: CommentedMap, key: str, where: str, checker: Checker) -> str | None:
    value = spec[key]
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:
        parts = None
    if isinstance(value, str) and not value.isascii():
        checker.problem(key_line(spec, key), f"{where}.{key}", "ASCII only (write IDNA as xn--)")
        return None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        checker.problem(key_line(spec, key), f"{where}.{key}", f"{value!r} is not an http(s) URL")
        return None
    if parts.query or parts.fragment:
        checker.problem(key_line(spec, key), f"{where}.{key}", "no query or fragment allowed")
        return None
    try:
        _ = parts.port
    except ValueError:
        checker.problem(key_line(spec, key), f"{where}.{key}", f"{value!r} has a bad port")
        return None
    return str(value).rstrip("/")


def _optional_str(spec: CommentedMap, key: str, where: str, checker: Checker) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        checker.problem(key_line(spec, key), f"{where}.{key}", "must be a non-empty string")
        return None
    return value
