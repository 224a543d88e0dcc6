"""Header hygiene on the way in and out: hop-by-hop headers dropped, X-Forwarded-* kept right.

Headers stay in ASGI's raw form, a list of (lowercase name, value) byte pairs, so repeated
headers (several Set-Cookie) and their order survive untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

RawHeaders = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
# Never forwarded: the gateway holds or streams the body already, and an upstream client told
# to wait for `100 Continue` waits on servers that never send it.
REQUEST_ONLY_HERE = frozenset({b"expect"})
GATEWAY_PREFIX = b"x-gateway-"


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(token.strip().lower() for token in value.split(b","))
    return tokens


def _is_hop_by_hop(name: bytes, named: set[bytes]) -> bool:
    return name in HOP_BY_HOP or name.startswith(b"proxy-") or name in named


def request_headers(
    headers: Iterable[tuple[bytes, bytes]], forwarded_for: bytes | str | None, scheme: str
) -> RawHeaders:
    """What the upstream receives: hop-by-hop, Expect, Host and client-sent x-gateway-*
    dropped, X-Forwarded-* set by the gateway.

    The client's own X-Forwarded-For never goes on as sent: `forwarded_for` is the whole
    chain to send (`normalize.forwarded_for`: the entries trusted proxies vouch for, then
    the peer), or None/empty to send none.
    """
    headers = list(headers)
    named = _connection_tokens(headers)
    host = b""
    out: RawHeaders = []
    for name, value in headers:
        if name == b"host":
            host = value
        elif (
            name in (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host")
            or name in REQUEST_ONLY_HERE
            or _is_hop_by_hop(name, named)
            or name.startswith(GATEWAY_PREFIX)
        ):
            continue
        else:
            out.append((name, value))
    if isinstance(forwarded_for, str):
        forwarded_for = forwarded_for.encode("latin-1")
    if forwarded_for:
        out.append((b"x-forwarded-for", forwarded_for))
    out.append((b"x-forwarded-proto", scheme.encode("latin-1")))
    if host:
        out.append((b"x-forwarded-host", host))
    return out


def response_headers(headers: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """What the client receives from an upstream answer: hop-by-hop and x-gateway-* dropped."""
    # Upstreams write names in any case (aiohttp keeps it): compare, and answer, in lower case.
    headers = [(name.lower(), value) for name, value in headers]
    named = _connection_tokens(headers)
    return [
        (name, value)
        for name, value in headers
        if not _is_hop_by_hop(name, named) and not name.startswith(GATEWAY_PREFIX)
    ]


class HeaderView(Mapping[str, str]):
    """A read-only name -> last value view over raw ASGI headers, decoded once on first use."""

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._decoded: dict[str, str] | None = None

    def _map(self) -> dict[str, str]:
        if self._decoded is None:
            self._decoded = {
                name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self._raw
            }
        return self._decoded

    def __getitem__(self, key: str) -> str:
        return self._map()[key]

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._map().get(key, default)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._map())

    def __len__(self) -> int:
        return len(self._map())


def cookie_value(cookie_header: str | None, name: str) -> str | None:
    if not cookie_header:
        return None
    for part in cookie_header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None
