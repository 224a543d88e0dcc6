"""The top-level `state:` block of routes.yaml, read for the loader with each problem's line."""

from __future__ import annotations

import os
from collections.abc import Mapping

from gateway.config.check import Checker, key_line
from gateway.config.model import StateSettings
from gateway.config.state import REDIS_URL_ENV, parse_state


def read_state(document: Mapping[str, object], checker: Checker) -> StateSettings | None:
    """The top-level `state:` block, every problem recorded with its line."""
    node = document.get("state")
    if node is None and "state" not in document:
        if not os.environ.get(REDIS_URL_ENV):
            return None
        node = {}
    if not isinstance(node, Mapping):
        checker.problem(key_line(document, "state"), "state", "must be a mapping: redis, ...")
        return None
    settings, problems = parse_state(node)
    for field, message in problems:
        line = key_line(node, field) if field in node else key_line(document, "state")
        checker.problem(line, f"state.{field}", message)
    return settings
