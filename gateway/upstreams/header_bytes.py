"""Request header values to aiohttp as their original bytes.

aiohttp takes header values as `str` and writes them encoded as UTF-8, so a value that came in
as latin-1 `caf\\xe9` would leave as `caf\\xc3\\xa9` (and UTF-8 `caf\\xc3\\xa9` as four bytes
more). A value with a byte outside ASCII is handed over as `Latin1Value`, a `str` whose
characters are the bytes (latin-1 decoded), and aiohttp's head serializer is wrapped, once per
process, to write such a value back with latin-1: the bytes that came in go out. Every other
value, and every other aiohttp user in the process, goes through aiohttp's own serializer
unchanged (the wrapper only looks for the marker type).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from multidict import CIMultiDict


class Serializer(Protocol):
    def __call__(self, status_line: str, headers: CIMultiDict[str]) -> bytes: ...


# What aiohttp itself refuses in a head (CR, LF and other controls but tab): header injection.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class Latin1Value(str):
    """A header value whose characters stand for its bytes, one each (latin-1)."""

    __slots__ = ()


def header_pairs(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """(name, value) pairs for aiohttp that it writes back as exactly these bytes."""
    _install()
    return [(name.decode("latin-1"), _value(value)) for name, value in headers]


def _value(value: bytes) -> str:
    text = value.decode("latin-1")
    return text if value.isascii() else Latin1Value(text)


_installed = False


def _install() -> None:
    global _installed  # noqa: PLW0603 - one wrapper per process, whichever session asks first
    if _installed:
        return
    # cold start: aiohttp only once an http target is first called
    from aiohttp import http_writer

    http_writer._serialize_headers = _wrap(http_writer._serialize_headers)
    _installed = True


def _wrap(original: Serializer) -> Serializer:
    def serialize(status_line: str, headers: CIMultiDict[str]) -> bytes:
        items = list(headers.items())
        if not any(type(value) is Latin1Value for _, value in items):
            return original(status_line, headers)
        lines = [_checked(status_line).encode("utf-8")]
        for name, value in items:
            raw = _checked(value).encode("latin-1" if type(value) is Latin1Value else "utf-8")
            lines.append(_checked(str(name)).encode("utf-8") + b": " + raw)
        return b"\r\n".join(lines) + b"\r\n\r\n"

    return serialize


def _checked(text: str) -> str:
    if _FORBIDDEN.search(text) is not None:
        raise ValueError("Forbidden control character detected in headers.")
    return text
