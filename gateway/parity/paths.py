"""Field paths: the names a difference is counted under and `compare.ignore` refers to.

    path    := "status" | "header." NAME | "body" segment*
    segment := "." KEY | "[]" | '["' ANY '"]'      (the quoted form for keys with . [ ] " or space)

A pair whose candidate never answered differs at the one path `no_answer`, which cannot be
ignored. `body.items[].price` is the `price` of every element of `items`, elements being compared by
index. Ignoring a path ignores everything below it: `body.meta` covers `body.meta.id` and
`body.meta[]`, never `body.metadata`.
"""

from __future__ import annotations

import json
import re

_KEY = re.compile(r"[^.\[\]\"\s]+")
_HEADER = re.compile(r"header\.[!#$%&'*+\-.^_`|~0-9a-z]+")
_SEGMENT = re.compile(r"\.([^.\[\]\"\s]+)|\[\]|\[(\"(?:[^\"\\]|\\.)*\")\]")


def child(path: str, key: str) -> str:
    """The path of `key` inside the object at `path`."""
    if _KEY.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def element(path: str) -> str:
    return f"{path}[]"


def path_problem(path: object) -> str | None:
    """Why `path` is not a field path, or None when it is one."""
    if not isinstance(path, str):
        return f"{path!r} is not a field path (write body.a.b, body.items[].price, header.etag)"
    if path == "status" or _HEADER.fullmatch(path):
        return None
    if not path.startswith("body"):
        return f"{path!r} must start with status, header. or body"
    at = len("body")
    while at < len(path):
        found = _SEGMENT.match(path, at)
        if found is None:
            return f'{path!r}: cannot read {path[at:]!r} (write .key, [] or ["odd key"])'
        if found.group(2) is not None:
            try:
                json.loads(found.group(2))
            except ValueError:
                return f"{path!r}: {found.group(2)} is not a quoted key"
        at = found.end()
    return None


def covered(path: str, ignored: tuple[str, ...]) -> bool:
    """True when `path` is one of `ignored` or lies below one of them."""
    for prefix in ignored:
        if path == prefix:
            return True
        if path.startswith(prefix) and path[len(prefix)] in ".[":
            return True
    return False
