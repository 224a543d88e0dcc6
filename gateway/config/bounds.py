"""Bounds on what a routes.yaml may cost to load: its size, its alias expansion, its depth.

YAML aliases share one node many times over: a 600-byte file of nested aliases stands for
hundreds of millions of values, each of which a walk, a repr or an error message would pay
for. ruamel.yaml never copies an aliased node, so the tree it builds is small; what must be
bounded is how large it *reads*. `expansion_problem` counts both in one pass that visits each
distinct node once (memoized), and refuses a tree whose expanded size outgrows its distinct
size by more than a small factor, or that refers to itself, or is nested too deep.
"""

from __future__ import annotations

import os
from typing import Final

MAX_BYTES_ENV: Final = "GATEWAY_CONFIG_MAX_BYTES"
DEFAULT_MAX_BYTES: Final = 4 * 2**20
ALIAS_FACTOR: Final = 4
ALIAS_SLACK: Final = 10_000
MAX_DEPTH: Final = 64
EXCERPT_CHARS: Final = 80
MAX_MESSAGE_CHARS: Final = 400


def max_bytes() -> int:
    """GATEWAY_CONFIG_MAX_BYTES, else 4 MiB; a bad value falls back to the default."""
    value = os.environ.get(MAX_BYTES_ENV, "")
    try:
        limit = int(value)
    except ValueError:
        return DEFAULT_MAX_BYTES
    return limit if limit > 0 else DEFAULT_MAX_BYTES


def size_problem(size: int) -> str | None:
    limit = max_bytes()
    if size > limit:
        return f"larger than {limit} bytes (raise {MAX_BYTES_ENV} to allow more)"
    return None


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` cut to at most `limit` characters, with the cut shown."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}…[{len(text) - limit + 20} more chars]"


def short_message(message: str) -> str:
    """A problem message bounded in length, keeping its end (the reason) after a cut value."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    tail = message[-(MAX_MESSAGE_CHARS - EXCERPT_CHARS - 30) :]
    return f"{message[:EXCERPT_CHARS]}…[{len(message) - len(tail) - EXCERPT_CHARS} chars]…{tail}"


def expansion_problem(document: object) -> tuple[str, object] | None:
    """(why the loaded tree is too costly to read, the top-level key to blame), or None when
    it is not: aliases expanding it past a small factor, self-reference, depth."""
    sizes: dict[int, int] = {}
    distinct = 0
    # An explicit stack (not recursion): the depth we refuse must not be Python's own limit.
    # Each entry: (node, depth, its subtree is done, the top-level key it sits under).
    stack: list[tuple[object, int, bool, object]] = [(document, 1, False, None)]
    open_nodes: set[int] = set()
    while stack:
        node, depth, done, top = stack.pop()
        children = _children(node)
        if children is None:
            continue
        key = id(node)
        if done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes.get(id(c), 1) for c in children)
            continue
        if key in open_nodes:
            return "an alias refers to the node that holds it", top
        if key in sizes:
            continue
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels", top
        distinct += 1 + len(children)
        open_nodes.add(key)
        stack.append((node, depth, True, top))
        stack.extend((child, depth + 1, False, top_key) for child, top_key in _under(node, top))
    expanded = sizes.get(id(document), 1)
    if expanded > ALIAS_FACTOR * distinct + ALIAS_SLACK:
        message = (
            f"aliases expand {distinct} values to {expanded}; "
            f"at most {ALIAS_FACTOR}x plus {ALIAS_SLACK} is allowed"
        )
        return message, _largest(document, sizes)
    return None


def _under(node: object, top: object) -> list[tuple[object, object]]:
    """The node's children, each with the top-level key it sits under (its own, at the top)."""
    if top is None and isinstance(node, dict):
        return [pair for key, value in node.items() for pair in ((key, key), (value, key))]
    return [(child, top) for child in _children(node) or ()]


def _largest(document: object, sizes: dict[int, int]) -> object:
    """The top-level key whose value reads largest."""
    if not isinstance(document, dict) or not document:
        return None
    return max(document, key=lambda key: sizes.get(id(document[key]), 0))


def _children(node: object) -> list[object] | None:
    if isinstance(node, dict):
        return [*node.keys(), *node.values()]
    if isinstance(node, list | tuple | set):
        return list(node)
    return None


def decode_capped(data: bytes) -> str:
    """Bytes read up to `max_bytes() + 1` as UTF-8 text. Past the cap the text is refused
    later for its size, never here for a character cut in two."""
    return data.decode("utf-8", "strict" if len(data) <= max_bytes() else "replace")
