"""The path corpus: RFC 3986, WHATWG URL and Envoy vectors, as request paths a client sends.

Each vector is the raw path a client could put on the wire and the reference's path for it
(None: the reference refuses it). `classify` holds the gateway's normal form (the function
the proxy runs) against it: the same path, a refusal the README promises, or the id of a
row of the README's documented-deviation table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from gateway.decision import normal_form
from gateway.errors import BadPath

VENDOR = Path(__file__).parent / "vendor"

# Every reason `gateway.normalize` refuses a path for, each promised in the README's paragraph
# on the path (and its 400 `bad_path` row).
PROMISED_REFUSALS = frozenset(
    {
        "not absolute",
        "encoded slash",
        "encoded backslash or NUL",
        "backslash or NUL",
        "invalid percent-encoding",
        "invalid encoding",
        "path escapes root",
        "dot segment with parameters",
    }
)
ESCAPES_DEVIATION = "path-escapes-normalized"
SLASHES_DEVIATION = "path-repeated-slashes-merged"


@dataclass(frozen=True, slots=True)
class Vector:
    source: str  # rfc3986 | whatwg-url | envoy
    origin: str  # where in the source: section or test name, and the case as written there
    raw: bytes  # the request path on the wire
    expected: str | None  # the reference's path; None when the reference refuses it


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str  # matched | refused | deviation | unexplained
    got: str  # the gateway's forwarded path, or its refusal
    deviation: str | None = None


def classify(vector: Vector) -> Outcome:
    try:
        _, forwarded = normal_form(vector.raw)
    except BadPath as refused:
        reason = refused.message.removeprefix("path refused: ")
        if vector.expected is None:
            kind = "matched"  # the reference refuses it too
        else:
            kind = "refused" if reason in PROMISED_REFUSALS else "unexplained"
        return Outcome(kind, f"refused: {reason}")
    got = forwarded.decode("ascii")
    expected = vector.expected
    if expected is None:
        return Outcome("unexplained", got)
    if got == expected:
        return Outcome("matched", got)
    if unquote_to_bytes(got) == unquote_to_bytes(expected):
        return Outcome("deviation", got, ESCAPES_DEVIATION)
    if unquote_to_bytes(got) == unquote_to_bytes(merge_slashes(expected)):
        return Outcome("deviation", got, SLASHES_DEVIATION)
    return Outcome("unexplained", got)


def merge_slashes(path: str) -> str:
    return re.sub("/{2,}", "/", path)


def rfc3986() -> list[Vector]:
    data = json.loads((VENDOR / "rfc3986" / "vectors.json").read_text(encoding="utf-8"))
    found = [
        Vector("rfc3986", f"5.2.4 {given}", given.encode(), want)
        for given, want in data["remove_dot_segments"]["cases"]
    ]
    resolution = data["resolution"]
    base_path: str = resolution["base_path"]
    for part in ("normal", "abnormal"):
        for reference, resolved in resolution[part]:
            path = re.split("[?#]", reference, maxsplit=1)[0]
            if not path:
                merged = base_path
            elif path.startswith("/"):
                merged = path
            else:
                merged = base_path.rsplit("/", 1)[0] + "/" + path
            section = "5.4.1" if part == "normal" else "5.4.2"
            expected = urlsplit(resolved).path
            found.append(Vector("rfc3986", f"{section} {reference!r}", merged.encode(), expected))
    found += [
        Vector("rfc3986", f"6.2.2 {why}", given.encode(), want)
        for given, want, why in data["normalization"]["cases"]
    ]
    return found


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_ON_THE_WIRE = re.compile(r"^[^\x00-\x20\x7f]*$")
_PATH_RELEVANT = ("/.", "%", "\\", "//")


def whatwg() -> list[Vector]:
    """The http(s) entries whose path a client can send as written and that test a path rule."""
    data = json.loads((VENDOR / "whatwg-url" / "urltestdata.json").read_text(encoding="utf-8"))
    found: list[Vector] = []
    for index, entry in enumerate(data):
        raw = _wire_path(entry)
        if raw is None or not any(mark in raw for mark in _PATH_RELEVANT):
            continue
        try:
            wire = raw.encode("utf-8")
        except UnicodeEncodeError:
            continue  # a lone surrogate: no client can send it
        found.append(Vector("whatwg-url", f"#{index} {entry['input']!r}", wire, entry["pathname"]))
    return found


def _wire_path(entry: Any) -> str | None:
    if not isinstance(entry, dict) or entry.get("failure") or "pathname" not in entry:
        return None
    if entry.get("protocol") not in ("http:", "https:"):
        return None
    given: str = entry["input"]
    absolute = re.match(r"^https?://[^/\\?#]*", given, flags=re.IGNORECASE)
    if absolute:
        given = given[absolute.end() :]
    elif _SCHEME.match(given) or given.startswith(("//", "/\\", "\\", "?", "#")) or not given:
        return None
    elif not given.startswith("/"):
        # A relative reference: merged with the base's directory, as the parser does first.
        base = urlsplit(entry.get("base") or "")
        if base.scheme not in ("http", "https"):
            return None
        given = (base.path or "/").rsplit("/", 1)[0] + "/" + given
    path = re.split("[?#]", given, maxsplit=1)[0]
    if not path.startswith("/") or not _ON_THE_WIRE.match(path):
        return None
    return path


def envoy() -> list[Vector]:
    data = json.loads((VENDOR / "envoy" / "path_utility.json").read_text(encoding="utf-8"))
    found = [
        Vector("envoy", f"canonicalPath {given!r}", given.encode(), want)
        for given, want in data["canonical_path"]
    ]
    found += [
        Vector("envoy", f"invalid {given!r}", given.encode(), None) for given in data["invalid"]
    ]
    found += [
        Vector("envoy", f"mergeSlashes {given!r}", given.split("?")[0].encode(), want.split("?")[0])
        for given, want in data["merge_slashes"]
    ]
    return found


@cache
def corpus() -> tuple[Vector, ...]:
    """Every vector, once per (source, raw path)."""
    unique: dict[tuple[str, bytes], Vector] = {}
    for vector in [*rfc3986(), *whatwg(), *envoy()]:
        unique.setdefault((vector.source, vector.raw), vector)
    return tuple(unique.values())


def vector_id(vector: Vector) -> str:
    return f"{vector.source}:{vector.raw.decode('utf-8', 'backslashreplace')}"
