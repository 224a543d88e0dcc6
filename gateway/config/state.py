"""The `state:` block: where the fleet's shared protection state lives, and what to do without it.

`parse_state` is pure: it returns the settings or the problems, each as (field, message);
`config/state_block.py` reads it for the loader, attaching the file and line. Without a
`state:` block, GATEWAY_REDIS_URL alone turns fleet-wide state on with the defaults (the
deployment passes the cache's endpoint that way, so routes.yaml need not know it). Durations
are read by `gateway.config.units`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

from gateway.config.model import OnUnavailable, StateSettings
from gateway.config.units import parse_duration

REDIS_URL_ENV = "GATEWAY_REDIS_URL"
_KEYS = frozenset({"redis", "prefix", "timeout", "on_unavailable"})
_SCHEMES = ("redis", "rediss")

Problem = tuple[str, str]


def parse_state(
    mapping: Mapping[str, object] | None, environ: Mapping[str, str] = os.environ
) -> tuple[StateSettings | None, list[Problem]]:
    """The settings of a `state:` block (None without one), or the problems found in it."""
    if mapping is None:
        return None, []
    problems: list[Problem] = [
        (str(key), f"unknown key {str(key)[:80]!r} in state: use {', '.join(sorted(_KEYS))}")
        for key in mapping
        if key not in _KEYS
    ]
    url = environ.get(REDIS_URL_ENV) or mapping.get("redis")
    field = REDIS_URL_ENV if environ.get(REDIS_URL_ENV) else "redis"
    url_problem = _url_problem(url)
    if url_problem:
        problems.append((field, url_problem))
    prefix = mapping.get("prefix", "gw:")
    if not isinstance(prefix, str):
        problems.append(("prefix", f"prefix must be a string, not {prefix!r}"))
    timeout = _timeout(mapping.get("timeout", "50ms"), problems)
    on_unavailable = mapping.get("on_unavailable", "local")
    if on_unavailable not in ("local", "closed"):
        problems.append(
            ("on_unavailable", f"on_unavailable must be local or closed, not {on_unavailable!r}")
        )
    if problems:
        return None, problems
    return (
        StateSettings(
            redis=cast(str, url),
            prefix=cast(str, prefix),
            timeout=timeout,
            on_unavailable=cast(OnUnavailable, on_unavailable),
        ),
        [],
    )


def _url_problem(url: object) -> str | None:
    if not isinstance(url, str) or not url:
        return f"state needs redis: a redis:// or rediss:// URL (or {REDIS_URL_ENV})"
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return f"{url[:200]!r} is not a URL: write redis://host:6379/0 or rediss://..."
    if parts.scheme not in _SCHEMES or not parts.hostname or not port_ok:
        return f"{url[:200]!r} is not a redis:// or rediss:// URL with a host"
    return None


def _timeout(value: object, problems: list[Problem]) -> float:
    seconds = _duration(value)
    if seconds is None or not seconds > 0:
        problems.append(
            ("timeout", f"timeout must be a positive duration like 50ms, not {value!r}")
        )
        return 0.0
    return seconds


def _duration(value: object) -> float | None:
    try:
        return parse_duration(value)
    except ValueError:
        return None
