"""What a request must look like before it is matched: one spelling of its path, bounded sizes,
no client-forged gateway headers, and a client address only trusted proxies can vouch for.

`normalize_path` gives the gateway and the upstream the same view of a path: the decoded form
is what routes match, the raw form is what is forwarded, and decoding the raw form gives the
decoded one back. A path that climbs above the root is refused rather than clamped: no client
sends one by accident (browsers resolve dot segments themselves), servers disagree on what it
means (some clamp, some answer 400), and a refusal leaves a trace of the probe.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from gateway.headers import GATEWAY_PREFIX, RawHeaders

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_HEX = frozenset(b"0123456789abcdefABCDEF")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# RFC 3986 pchar without pct-encoded, plus '/': bytes that may stay as they are.
_PLAIN = bytes(sorted(_UNRESERVED | frozenset(b"!$&'()*+,;=:@/")))
_PLAIN_SET = frozenset(_PLAIN)
_FORBIDDEN = {
    0x2F: "encoded slash",
    0x5C: "encoded backslash or NUL",
    0x00: "encoded backslash or NUL",
}


class PathRefused(Exception):
    """The request path has no single safe meaning; answer 400 without routing it."""

    def __init__(self, reason: str, path: bytes = b"") -> None:
        super().__init__(f"{reason}: {path[:200]!r}" if path else reason)
        self.reason = reason


def normalize_path(raw_path: bytes) -> tuple[str, bytes]:
    """(decoded path to match, raw path to forward) for a raw, still-encoded request path."""
    if not raw_path.startswith(b"/"):
        raise PathRefused("not absolute", raw_path)
    if not raw_path.translate(None, _PLAIN) and b"//" not in raw_path and b"/." not in raw_path:
        return raw_path.decode("ascii"), raw_path
    raw = _remove_dot_segments(_normalize_escapes(raw_path), raw_path)
    try:
        decoded = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PathRefused("invalid encoding", raw_path) from exc
    # Tomcat and Jetty read "..;x" as "..": refuse what a Java upstream would climb with.
    for segment in decoded.split("/"):
        if segment.partition(";")[0] in (".", ".."):
            raise PathRefused("dot segment with parameters", raw_path)
    return decoded, raw


def _normalize_escapes(raw_path: bytes) -> bytes:
    """Unreserved escapes decoded, other escapes in upper case, unsafe bytes escaped."""
    first, *escaped = raw_path.split(b"%")
    out = bytearray(_plain(first, raw_path))
    for chunk in escaped:
        pair = chunk[:2]
        if len(pair) != 2 or not _HEX.issuperset(pair):
            raise PathRefused("invalid percent-encoding", raw_path)
        value = int(pair, 16)
        if value in _FORBIDDEN:
            raise PathRefused(_FORBIDDEN[value], raw_path)
        out += bytes((value,)) if value in _UNRESERVED else b"%%%02X" % value
        out += _plain(chunk[2:], raw_path)
    return bytes(out)


def _plain(chunk: bytes, raw_path: bytes) -> bytes:
    if b"\\" in chunk or b"\x00" in chunk:
        raise PathRefused("backslash or NUL", raw_path)
    if not chunk.translate(None, _PLAIN):
        return chunk
    return b"".join(bytes((b,)) if b in _PLAIN_SET else b"%%%02X" % b for b in chunk)


def _remove_dot_segments(path: bytes, raw_path: bytes) -> bytes:
    """RFC 3986 5.2.4 on the path as written, then repeated slashes merged.

    In this order `/a/b//..` is `/a/b/`, as RFC 3986 resolves it; merging first would give
    `/a/`. Merging afterwards only drops empty segments, so it cannot bring a dot segment back:
    the result has neither, and normalizing it again changes nothing.
    """
    segments = path.split(b"/")[1:]
    out: list[bytes] = []
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == b"..":
            if not out:
                raise PathRefused("path escapes root", raw_path)
            out.pop()
        elif segment != b".":
            out.append(segment)
            continue
        if index == last:
            out.append(b"")  # "/a/b/.." is "/a/": the directory, as RFC 3986 keeps it
    kept = [segment for segment in out if segment]
    trailing = bool(kept) and out[-1] == b""
    return b"/" + b"/".join(kept) + (b"/" if trailing else b"")


@dataclass(frozen=True, slots=True)
class RequestLimits:
    max_url_bytes: int = 8192
    max_header_bytes: int = 16384
    max_headers: int = 100
    max_body_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class LimitBreach:
    status: int
    reason: str


def check_request(
    limits: RequestLimits, raw_path: bytes, query: bytes, headers: Sequence[tuple[bytes, bytes]]
) -> LimitBreach | None:
    """414 for a path and query over `max_url_bytes`, 431 for too many or too large headers."""
    url_bytes = len(raw_path) + (len(query) + 1 if query else 0)
    if url_bytes > limits.max_url_bytes:
        return LimitBreach(414, f"URL of {url_bytes} bytes, over {limits.max_url_bytes}")
    if len(headers) > limits.max_headers:
        return LimitBreach(431, f"{len(headers)} headers, over {limits.max_headers}")
    header_bytes = sum(len(name) + len(value) for name, value in headers)
    if header_bytes > limits.max_header_bytes:
        return LimitBreach(431, f"headers of {header_bytes} bytes, over {limits.max_header_bytes}")
    return None


def body_limit_exceeded(limits: RequestLimits, content_length: int | None) -> bool:
    """Whether a body of `content_length` bytes (so far, or announced) is over the limit."""
    limit = limits.max_body_bytes
    return limit is not None and content_length is not None and content_length > limit


def strip_gateway_headers(headers: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """The client's headers without any x-gateway-* it sent: those are the gateway's to set."""
    return [(name, value) for name, value in headers if not name.lower().startswith(GATEWAY_PREFIX)]


def parse_trusted(specs: Iterable[str]) -> tuple[Network, ...]:
    """Trusted proxies as networks ("10.0.0.0/8", "127.0.0.1"); ValueError names a bad one."""
    return tuple(ipaddress.ip_network(spec.strip(), strict=True) for spec in specs)


def forwarded_for(
    headers: Iterable[tuple[bytes, bytes]], peer: str | None, trusted: Sequence[Network]
) -> tuple[str | None, bytes]:
    """(client address, X-Forwarded-For to send upstream; b"" to send none).

    Only a trusted peer's X-Forwarded-For is believed, and only from the right back to the
    first address no trusted proxy added: that is the client. Entries left of it are the
    client's own say and are dropped, so an upstream reading the leftmost entry is not fooled.
    """
    if peer is None:
        return None, b""
    peer_ip = _address(peer)
    if peer_ip is None or not _is_trusted(peer_ip, trusted):
        return peer, peer.encode("ascii", "backslashreplace")
    chain = [
        entry.strip()
        for name, value in headers
        if name.lower() == b"x-forwarded-for"
        for entry in value.decode("latin-1").split(",")
        if entry.strip()
    ]
    client: Address = peer_ip
    vouched: list[Address] = []
    for entry in reversed(chain):
        address = _address(entry)
        if address is None:
            break
        client = address
        vouched.append(address)
        if not _is_trusted(address, trusted):
            break
    sent = [str(address) for address in reversed(vouched)] + [str(peer_ip)]
    return str(client), ", ".join(sent).encode("ascii")


def _address(text: str) -> Address | None:
    """An IP from "1.2.3.4", "1.2.3.4:80", "::1" or "[::1]:80"; None when it is none."""
    host = text.strip()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None  # a link-local zone says nothing about who the client is
        return address.ipv4_mapped or address
    return address


def _is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)
