"""A Lambda event's request fields, read and checked once, at the entry.

An event is JSON text, so what reaches the gateway is characters, not the client's bytes.
Each reader here turns them into the bytes the upstream gets, or refuses the event with the
error that says who is at fault: `EventRefused` (400) for what a client could have sent
through the ALB or API Gateway, `BrokenEvent` (502, logged) for what only a broken
integration could send (a missing method, a header map that is not a map, a body that is
not text, base64 that is not base64).

Characters outside printable ASCII in a path or query are sent percent-encoded as UTF-8 (as
a browser would send them); a header value goes as latin-1 when every character fits in
one byte (as the ASGI servers decode it), else as UTF-8.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, ClassVar

from gateway.errors import GatewayError
from gateway.headers import RawHeaders

_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_FORBIDDEN_IN_VALUE = ("\r", "\n", "\x00")


class EventRefused(GatewayError):
    """What the client sent cannot be forwarded as it came."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"


class BrokenEvent(GatewayError):
    """The event is not one the ALB or API Gateway sends: the integration is at fault."""

    status_code: ClassVar[int] = 502
    code: ClassVar[str] = "bad_event"


class ResponseTooLarge(GatewayError):
    """The answer cannot fit in what the entry may return to the ALB or API Gateway."""

    status_code: ClassVar[int] = 502
    code: ClassVar[str] = "response_too_large"


def kind(value: object) -> str:
    """A JSON type name, for error messages."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names.update({list: "a list", dict: "an object"})
    return names.get(type(value), type(value).__name__)


def mapping(parent: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    """An optional object: absent or null is empty; anything else but an object is broken."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BrokenEvent(f"{where}{key} is {kind(value)}, not an object")
    return value


def single_values(parent: Mapping[str, Any], key: str) -> list[tuple[str, str]]:
    pairs = []
    for name, value in mapping(parent, key).items():
        if not isinstance(value, str):
            raise BrokenEvent(f"{key}[{name!r}] is {kind(value)}, not a string")
        pairs.append((str(name), value))
    return pairs


def multi_values(parent: Mapping[str, Any], key: str) -> list[tuple[str, str]]:
    pairs = []
    for name, values in mapping(parent, key).items():
        if not isinstance(values, list):
            raise BrokenEvent(f"{key}[{name!r}] is {kind(values)}, not a list")
        for value in values:
            if not isinstance(value, str):
                raise BrokenEvent(f"{key}[{name!r}] holds {kind(value)}, not a string")
            pairs.append((str(name), value))
    return pairs


def text(parent: Mapping[str, Any], key: str, where: str = "", default: str | None = None) -> str:
    value = parent.get(key, default)
    if not isinstance(value, str):
        raise BrokenEvent(f"{where}{key} is {kind(value)}, not a string")
    return value


def method(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BrokenEvent(f"{where} is {kind(value)}, not a method")
    if not set(value.encode("utf-8", "surrogatepass")) <= _TOKEN:
        raise EventRefused(f"method {value[:40]!r} is not an HTTP token")
    return value


def header_list(pairs: list[tuple[str, str]]) -> RawHeaders:
    """Header names lower-cased and checked as tokens; values as bytes (see the module)."""
    headers: RawHeaders = []
    for name, value in pairs:
        raw_name = name.lower().encode("utf-8", "surrogatepass")
        if not raw_name or not set(raw_name) <= _TOKEN:
            raise EventRefused(f"header name {name[:40]!r} is not an HTTP token")
        if any(bad in value for bad in _FORBIDDEN_IN_VALUE):
            raise EventRefused(f"header {name[:40]!r} holds a line break or NUL")
        headers.append((raw_name, value_bytes(value, f"header {name[:40]!r}")))
    return headers


def value_bytes(value: str, where: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        pass
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: valid JSON, but no bytes a client sent decode to it.
        raise BrokenEvent(f"{where} holds a lone surrogate") from None


def url_bytes(value: str, where: str) -> bytes:
    """Printable ASCII as it is (escapes stay escapes); anything else percent-encoded."""
    out = bytearray()
    for char in value:
        code = ord(char)
        if 0x21 <= code <= 0x7E:
            out.append(code)
            continue
        try:
            encoded = char.encode("utf-8")
        except UnicodeEncodeError:
            raise BrokenEvent(f"{where} holds a lone surrogate") from None
        out += b"".join(b"%%%02X" % byte for byte in encoded)
    return bytes(out)


def path_bytes(value: str, where: str) -> bytes:
    if value == "":
        return b"/"
    if not value.startswith("/"):
        raise EventRefused(f"path {value[:60]!r} does not start with '/'")
    return url_bytes(value, where)


def body_bytes(event: Mapping[str, Any]) -> bytes:
    body = event.get("body")
    encoded = event.get("isBase64Encoded", False)
    if encoded is not None and not isinstance(encoded, bool):
        raise BrokenEvent(f"isBase64Encoded is {kind(encoded)}, not a boolean")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise BrokenEvent(f"body is {kind(body)}, not a string")
    if encoded:
        try:
            return base64_body(body)
        except ValueError:
            raise BrokenEvent("body is marked isBase64Encoded but is not base64") from None
    return value_bytes_utf8(body)


def base64_body(body: str) -> bytes:
    """A body marked isBase64Encoded, either way (an event in, a target's answer back).

    Whitespace (MIME line breaks) is fine; anything else outside base64 is a ValueError."""
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def value_bytes_utf8(body: str) -> bytes:
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError:
        raise BrokenEvent("body holds a lone surrogate") from None
