"""Problem collection while walking a routes.yaml tree: every problem with its line."""

from __future__ import annotations

import difflib
from typing import Any

from ruamel.yaml.comments import CommentedMap

from gateway.config.bounds import excerpt, short_message
from gateway.config.model import ConfigProblem

MAX_PROBLEMS = 100


class Checker:
    """Collects problems while walking the YAML tree; lines come from ruamel's markers."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[ConfigProblem] = []

    def problem(self, line: int, where: str, message: str) -> None:
        # Bounded in count and length: a bad file never makes a megabyte of errors.
        if len(self.problems) < MAX_PROBLEMS:
            where, message = excerpt(where, 120), short_message(message)
            self.problems.append(ConfigProblem(self.source, line, where, message))
        elif len(self.problems) == MAX_PROBLEMS:
            more = ConfigProblem(self.source, line, "config", "more problems; fix these first")
            self.problems.append(more)

    @property
    def full(self) -> bool:
        """No more problems will be listed: skip the costly hints (difflib) for them."""
        return len(self.problems) > MAX_PROBLEMS

    def unknown_keys(self, node: CommentedMap, allowed: tuple[str, ...], where: str) -> None:
        for key in node:
            if key not in allowed and not self.full:
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
