"""Problem collection while walking a routes.yaml tree: every problem with its line."""

from __future__ import annotations

import difflib
from typing import Any

from ruamel.yaml.comments import CommentedMap

from gateway.config import ConfigProblem


class Checker:
    """Collects problems while walking the YAML tree; lines come from ruamel's markers."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[ConfigProblem] = []

    def problem(self, line: int, where: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.source, line, where, message))

    def unknown_keys(self, node: CommentedMap, allowed: tuple[str, ...], where: str) -> None:
        for key in node:
            if key not in allowed:
                guess = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean '{guess[0]}'?)" if guess else ""
                expected = ", ".join(allowed)
                self.problem(
                    key_line(node, key),
                    f"{where}.{key}",
                    f"unknown key{hint}; expected one of: {expected}",
                )


def key_line(node: Any, key: Any) -> int:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return node_line(node)


def node_line(node: Any) -> int:
    try:
        return int(node.lc.line) + 1
    except (AttributeError, TypeError):
        return 0
