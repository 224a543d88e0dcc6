"""A route's `shadow:` block through the loader: `parity.spec.parse_shadow` decides what is
valid, this module places each of its problems on its file line and checks the candidate
against the table (it must be a declared target, and not the route's only target)."""

from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedMap

from gateway.config.check import Checker, key_line, node_line
from gateway.parity.spec import ShadowSpec, parse_shadow


def shadow_section(
    spec: CommentedMap,
    where: str,
    targets: dict[str, Any],
    split: tuple[tuple[str, float], ...] | None,
    checker: Checker,
) -> ShadowSpec | None:
    """The route's shadow spec, or None (absent, or problems recorded in `checker`)."""
    if "shadow" not in spec:
        return None
    parsed, problems = parse_shadow(spec["shadow"])
    for field, message in problems:
        checker.problem(_line(spec, field), f"{where}.{field}", message)
    if parsed is None:
        return None
    line = _line(spec, "shadow.target")
    if parsed.target not in targets:
        known = ", ".join(sorted(targets))
        checker.problem(
            line, f"{where}.shadow.target", f"unknown target {parsed.target!r} (known: {known})"
        )
        return None
    if split and all(name == parsed.target for name, _ in split):
        checker.problem(
            line,
            f"{where}.shadow.target",
            f"{parsed.target!r} already answers every request of the route: "
            "the candidate must differ from the target it is compared with",
        )
        return None
    return parsed


def _line(spec: CommentedMap, field: str) -> int:
    """The line of the deepest key of `field` (dotted, from the route) present in the file."""
    node: Any = spec
    line = node_line(spec)
    for key in field.split("."):
        if not isinstance(node, CommentedMap) or key not in node:
            break
        line = key_line(node, key)
        node = node[key]
    return line
