"""One pair of answers, compared: status, the listed headers, and the body field by field.

JSON bodies are walked with an explicit stack (no recursion, whatever the depth). Equal
subtrees are passed over with one C-level `==`; when a body holds `true` or `false` that is
confirmed by their marshal bytes, since `True == 1` in Python but not in JSON. Array elements
are compared by index and reported under the array's path (`body.items[].price`); an array of
the same elements in another order is one `order` difference, one of another length one `size`.
"""

from __future__ import annotations

import json
import marshal
from dataclasses import dataclass
from typing import Any, Literal, cast

from gateway.parity.paths import child, covered, element
from gateway.parity.spec import ShadowSpec

Kind = Literal["value", "type", "missing", "extra", "order", "size", "body", "no_answer"]
Outcome = Literal["compared", "skipped", "dropped", "no_answer"]
Headers = tuple[tuple[bytes, bytes], ...]

EXCERPT_CHARS = 2048
MAX_DIFFERENCES = 256
"""Paths kept per pair: a pair that differs in more is already a mismatch."""
NO_ANSWER = "no_answer"
ABSENT = object()


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    kind: Kind
    primary: str
    """The primary's part at `path`, compact JSON (or a size), cut to EXCERPT_CHARS."""
    candidate: str


@dataclass(frozen=True, slots=True)
class Comparison:
    outcome: Outcome
    differences: tuple[Difference, ...] = ()


def judge(primary: Answer, candidate: Answer | None, spec: ShadowSpec) -> Comparison:
    """What the corridor records for one copied request."""
    if candidate is None:
        return Comparison("no_answer", tuple(compare(primary, None, spec)))
    if max(len(primary.body), len(candidate.body)) > spec.max_body:
        return Comparison("skipped")
    return Comparison("compared", tuple(compare(primary, candidate, spec)))


def compare(primary: Answer, candidate: Answer | None, spec: ShadowSpec) -> list[Difference]:
    if candidate is None:
        return [Difference(NO_ANSWER, "no_answer", str(primary.status), "")]
    ignore = spec.compare.ignore
    found: dict[str, Difference] = {}
    if primary.status != candidate.status and not covered("status", ignore):
        found["status"] = Difference("status", "value", str(primary.status), str(candidate.status))
    for name in spec.compare.headers:
        path = f"header.{name}"
        if not covered(path, ignore):
            _header(found, path, _values(primary.headers, name), _values(candidate.headers, name))
    if not covered("body", ignore) and primary.body != candidate.body:
        _body(found, primary, candidate, ignore)
    return list(found.values())


def _values(headers: Headers, name: str) -> str | None:
    wanted = name.encode("latin-1")
    values = [v.decode("latin-1") for k, v in headers if k.lower() == wanted]
    return ", ".join(values) if values else None


def _header(found: dict[str, Difference], path: str, one: str | None, two: str | None) -> None:
    if one == two:
        return
    kind: Kind = "missing" if two is None else "extra" if one is None else "value"
    found[path] = Difference(path, kind, one or "", two or "")


def _body(
    found: dict[str, Difference], primary: Answer, candidate: Answer, ignore: tuple[str, ...]
) -> None:
    one, two = _json(primary), _json(candidate)
    if one is _NOT_JSON or two is _NOT_JSON:
        found["body"] = Difference(
            "body", "body", f"{len(primary.body)} bytes", f"{len(candidate.body)} bytes"
        )
        return
    bools = any(
        word in body for body in (primary.body, candidate.body) for word in (b"true", b"false")
    )
    walk(found, one, two, ignore, bools=bools)


_NOT_JSON = object()
_DECODER = json.JSONDecoder(parse_constant=str)
"""NaN and Infinity read as their names: a NaN never equals itself, and would always differ."""


def _json(answer: Answer) -> object:
    kind = _values(answer.headers, "content-type") or ""
    start = answer.body.lstrip()[:1]
    if "json" not in kind.lower() and start not in (b"{", b"["):
        return _NOT_JSON
    try:
        return _DECODER.decode(answer.body.decode(json.detect_encoding(answer.body)))
    except (ValueError, RecursionError):
        return _NOT_JSON


def walk(
    found: dict[str, Difference],
    one: object,
    two: object,
    ignore: tuple[str, ...] = (),
    *,
    bools: bool = True,
) -> None:
    """Add the differences between two JSON documents under `body` to `found`.

    `bools=False` promises neither document holds true or false, so Python's `==` (where
    `True == 1`) is exact for JSON and equal subtrees cost one C comparison.
    """
    _Walk(found, ignore, bools).run(one, two)


class _Walk:
    def __init__(self, found: dict[str, Difference], ignore: tuple[str, ...], bools: bool) -> None:
        self.found = found
        self.ignore = ignore
        self.bools = bools
        self.stack: list[tuple[str, object, object]] = []

    def run(self, one: object, two: object) -> None:
        self.stack.append(("body", one, two))
        while self.stack and len(self.found) < MAX_DIFFERENCES:
            path, a, b = self.stack.pop()
            if covered(path, self.ignore):
                continue
            kind_a, kind_b = _kind(a), _kind(b)
            if kind_a != kind_b:
                self.add(path, "type", a, b)
            elif kind_a == "object":
                self.objects(path, a, b)  # type: ignore[arg-type]
            elif kind_a == "array":
                self.arrays(path, a, b)  # type: ignore[arg-type]
            elif a != b:
                self.add(path, "value", a, b)

    def differs(self, a: object, b: object) -> bool:
        """Worth a closer look: True for every JSON difference, rarely for equal values."""
        if type(a) is not type(b):
            return True
        if type(a) not in (dict, list):
            return a != b
        if a != b:
            return True
        if not self.bools:
            return False
        try:  # == let True match 1: marshal writes them apart (version 2: no shared refs)
            return marshal.dumps(cast(Any, a), 2) != marshal.dumps(cast(Any, b), 2)
        except ValueError:
            return True

    def apart(self, a: list[object], b: list[object]) -> list[int]:
        """Positions where two equal-length arrays differ, bools confirmed once for all."""
        loose = [
            i for i, (x, y) in enumerate(zip(a, b, strict=True)) if type(x) is not type(y) or x != y
        ]
        if not self.bools or len(loose) == len(a):
            return loose
        rest = sorted(set(range(len(a))) - set(loose))
        if not self.differs([a[i] for i in rest], [b[i] for i in rest]):
            return loose
        return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if self.differs(x, y)]

    def objects(self, path: str, a: dict[str, object], b: dict[str, object]) -> None:
        for key, value in a.items():
            if key not in b:
                self.add(child(path, key), "missing", value, ABSENT)
            elif self.differs(value, b[key]):
                self.stack.append((child(path, key), value, b[key]))
        for key, value in b.items():
            if key not in a:
                self.add(child(path, key), "extra", ABSENT, value)

    def arrays(self, path: str, a: list[object], b: list[object]) -> None:
        if len(a) != len(b):
            self.add(path, "size", len(a), len(b))
            return
        apart = self.apart(a, b)
        if len(apart) > 1 and _reordered([a[i] for i in apart], [b[i] for i in apart]):
            self.add(path, "order", a, b)
            return
        inner = element(path)
        self.stack.extend((inner, a[i], b[i]) for i in reversed(apart))

    def add(self, path: str, kind: Kind, a: object, b: object) -> None:
        if path not in self.found and not covered(path, self.ignore):
            self.found[path] = Difference(path, kind, _excerpt(a), _excerpt(b))


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _canonical(value: object) -> str | None:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (RecursionError, ValueError, TypeError):
        return None


def _reordered(a: list[object], b: list[object]) -> bool:
    """The same elements in another order (a and b hold only the positions that differ)."""
    if a[0] not in b:  # cheap refusal: most differing arrays differ in content, not order
        return False
    one = [_canonical(x) for x in a]
    two = [_canonical(x) for x in b]
    if None in one or None in two:
        return False
    return sorted(one) == sorted(two)  # type: ignore[type-var]


def _excerpt(value: object) -> str:
    if value is ABSENT:
        return "(absent)"
    text = _canonical(value) if value is not None else "null"
    if text is None:
        text = "…too deep to show"
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"
