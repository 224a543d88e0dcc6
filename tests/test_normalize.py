"""gateway.normalize: one spelling per path, request size limits, client address and headers."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.normalize import (
    LimitBreach,
    PathRefused,
    RequestLimits,
    body_limit_exceeded,
    check_request,
    forwarded_for,
    normalize_path,
    parse_trusted,
    strip_gateway_headers,
)


@pytest.mark.parametrize(
    ("raw", "decoded", "forwarded"),
    [
        pytest.param(b"/api/orders", "/api/orders", b"/api/orders", id="already-normal"),
        pytest.param(b"/", "/", b"/", id="root"),
        pytest.param(b"/api/../admin", "/admin", b"/admin", id="dot-dot"),
        pytest.param(b"/%61dmin", "/admin", b"/admin", id="encoded-unreserved"),
        pytest.param(b"/%7e%2D%5f%2E", "/~-_.", b"/~-_.", id="encoded-unreserved-marks"),
        pytest.param(b"//api///orders", "/api/orders", b"/api/orders", id="repeated-slashes"),
        pytest.param(b"/a/./b/", "/a/b/", b"/a/b/", id="dot-keeps-trailing-slash"),
        pytest.param(b"/a/b/..", "/a/", b"/a/", id="final-dot-dot"),
        pytest.param(b"/a/.", "/a/", b"/a/", id="final-dot"),
        pytest.param(b"/a/..", "/", b"/", id="back-to-root"),
        pytest.param(b"/a/%2e%2E/b", "/b", b"/b", id="encoded-dot-dot"),
        pytest.param(b"/api//", "/api/", b"/api/", id="repeated-trailing-slash"),
        pytest.param(b"/caf%C3%A9", "/café", b"/caf%C3%A9", id="utf8-escape-kept"),
        pytest.param(b"/caf%c3%a9", "/café", b"/caf%C3%A9", id="lowercase-hex-uppercased"),
        pytest.param(b"/a%20b", "/a b", b"/a%20b", id="reserved-escape-kept"),
        pytest.param(b"/a%25b", "/a%b", b"/a%25b", id="escaped-percent"),
        pytest.param(b"/caf\xc3\xa9", "/café", b"/caf%C3%A9", id="raw-utf8-escaped"),
        pytest.param(b"/a{b}", "/a{b}", b"/a%7Bb%7D", id="unsafe-ascii-escaped"),
        pytest.param(b"/a;v=1/b:c@d", "/a;v=1/b:c@d", b"/a;v=1/b:c@d", id="sub-delims-kept"),
        pytest.param(b"/.well-known/x", "/.well-known/x", b"/.well-known/x", id="dot-in-name"),
        pytest.param(b"/a/...", "/a/...", b"/a/...", id="three-dots-is-a-name"),
        pytest.param(b"/foo/bar//..", "/foo/bar/", b"/foo/bar/", id="rfc-order-empty-then-dot-dot"),
        pytest.param(b"/a//../b", "/a/b", b"/a/b", id="dot-dot-pops-empty-segment"),
        pytest.param(b"//..", "/", b"/", id="dot-dot-of-empty-segment-at-root"),
        pytest.param(b"/a/.//./b//", "/a/b/", b"/a/b/", id="dots-and-slashes-mixed"),
    ],
)
def test_normalized_spelling(raw: bytes, decoded: str, forwarded: bytes) -> None:
    # GIVEN a raw request path
    # WHEN it is normalized
    result = normalize_path(raw)

    # THEN the decoded form is what routes see and the raw form is what goes upstream
    assert result == (decoded, forwarded)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"/admin%2f..", "encoded slash", id="encoded-slash-lower"),
        pytest.param(b"/api%2Fadmin", "encoded slash", id="encoded-slash-upper"),
        pytest.param(b"/a%5Cb", "encoded backslash or NUL", id="encoded-backslash"),
        pytest.param(b"/a%00", "encoded backslash or NUL", id="encoded-nul"),
        pytest.param(b"/a\\b", "backslash or NUL", id="raw-backslash"),
        pytest.param(b"/a\x00b", "backslash or NUL", id="raw-nul"),
        pytest.param(b"/a%2", "invalid percent-encoding", id="short-escape"),
        pytest.param(b"/a%", "invalid percent-encoding", id="bare-percent"),
        pytest.param(b"/a%zz", "invalid percent-encoding", id="non-hex-escape"),
        pytest.param(b"/a%+1", "invalid percent-encoding", id="signed-escape"),
        pytest.param(b"/..", "path escapes root", id="dot-dot-at-root"),
        pytest.param(b"/%2e%2e/etc", "path escapes root", id="encoded-dot-dot-at-root"),
        pytest.param(b"/a/../../b", "path escapes root", id="climbs-past-root"),
        pytest.param(b"/api/..;/admin", "dot segment with parameters", id="tomcat-dot-dot"),
        pytest.param(b"/api/..%3B/admin", "dot segment with parameters", id="encoded-param"),
        pytest.param(b"/caf%E9", "invalid encoding", id="latin1-escape"),
        pytest.param(b"/%C0%AE%C0%AE/x", "invalid encoding", id="overlong-utf8-dot"),
        pytest.param(b"api/orders", "not absolute", id="relative"),
        pytest.param(b"", "not absolute", id="empty"),
        pytest.param(b"http://evil/x", "not absolute", id="absolute-form"),
    ],
)
def test_refused_paths(raw: bytes, reason: str) -> None:
    # GIVEN a raw path with no single safe meaning
    # WHEN it is normalized
    with pytest.raises(PathRefused) as refused:
        normalize_path(raw)

    # THEN it is refused, saying why
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"/api/../admin/", id="dot-dot"),
        pytest.param(b"/caf%c3%a9//x/./", id="mixed"),
        pytest.param(b"/a%7b%41", id="escapes"),
    ],
)
def test_normalizing_twice_changes_nothing(raw: bytes) -> None:
    # GIVEN a path normalized once
    once = normalize_path(raw)

    # WHEN its forwarded form is normalized again
    twice = normalize_path(once[1])

    # THEN nothing changes
    assert twice == once


URL_LIMITS = RequestLimits(max_url_bytes=20)


@pytest.mark.parametrize(
    ("path", "query", "status"),
    [
        pytest.param(b"/" + b"a" * 19, b"", None, id="path-at-limit"),
        pytest.param(b"/" + b"a" * 20, b"", 414, id="path-over-limit"),
        pytest.param(b"/" + b"a" * 9, b"b" * 9, None, id="path-and-query-at-limit"),
        pytest.param(b"/" + b"a" * 9, b"b" * 10, 414, id="question-mark-counts"),
    ],
)
def test_url_limit(path: bytes, query: bytes, status: int | None) -> None:
    # GIVEN a 20-byte URL limit
    # WHEN a request's path and query are checked
    breach = check_request(URL_LIMITS, path, query, [])

    # THEN only a longer URL is refused, with 414
    assert (breach.status if breach else None) == status


HEADER_LIMITS = RequestLimits(max_header_bytes=10, max_headers=3)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param([(b"a", b"b")] * 3, None, id="count-at-limit"),
        pytest.param([(b"a", b"")] * 4, 431, id="count-over-limit"),
        pytest.param([(b"abcde", b"fghij")], None, id="bytes-at-limit"),
        pytest.param([(b"abcde", b"fghijk")], 431, id="bytes-over-limit"),
        pytest.param([(b"abc", b"de"), (b"fg", b"hijk")], 431, id="bytes-summed"),
    ],
)
def test_header_limits(headers: list[tuple[bytes, bytes]], status: int | None) -> None:
    # GIVEN at most 3 headers of 10 bytes in all
    # WHEN a request's headers are checked
    breach = check_request(HEADER_LIMITS, b"/", b"", headers)

    # THEN more or larger headers are refused with 431
    assert (breach.status if breach else None) == status


def test_url_breach_is_reported_before_header_breach() -> None:
    # GIVEN a request over both the URL and the header limits
    limits = RequestLimits(max_url_bytes=1, max_headers=0)

    # WHEN it is checked
    breach = check_request(limits, b"/ab", b"", [(b"a", b"b")])

    # THEN the URL is what is reported
    assert breach == LimitBreach(414, "URL of 3 bytes, over 1")


@pytest.mark.parametrize(
    ("limit", "length", "exceeded"),
    [
        pytest.param(None, 10**12, False, id="no-limit"),
        pytest.param(100, None, False, id="unknown-length"),
        pytest.param(100, 100, False, id="at-limit"),
        pytest.param(100, 101, True, id="over-limit"),
    ],
)
def test_body_limit(limit: int | None, length: int | None, exceeded: bool) -> None:
    # GIVEN a body limit (or none)
    limits = RequestLimits(max_body_bytes=limit)

    # WHEN a body length is checked
    # THEN only a known length over the limit exceeds it
    assert body_limit_exceeded(limits, length) is exceeded


def test_client_sent_gateway_headers_are_dropped() -> None:
    # GIVEN client headers including forged x-gateway-* ones in any case
    headers = [
        (b"x-gateway-route", b"admin"),
        (b"accept", b"*/*"),
        (b"X-Gateway-Target", b"legacy"),
        (b"x-gatewayish", b"kept"),
    ]

    # WHEN they are stripped
    kept = strip_gateway_headers(headers)

    # THEN only the gateway's own prefix is dropped, order kept
    assert kept == [(b"accept", b"*/*"), (b"x-gatewayish", b"kept")]


TRUSTED = parse_trusted(["10.0.0.0/8", "127.0.0.1", "fd00::/8"])


def xff(value: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"example"), (b"x-forwarded-for", value)]


@pytest.mark.parametrize(
    ("headers", "peer", "client", "sent"),
    [
        pytest.param([], "8.8.8.8", "8.8.8.8", b"8.8.8.8", id="direct-client"),
        pytest.param(xff(b"1.1.1.1"), "8.8.8.8", "8.8.8.8", b"8.8.8.8", id="untrusted-peer-lies"),
        pytest.param(xff(b"1.2.3.4"), "10.0.0.5", "1.2.3.4", b"1.2.3.4, 10.0.0.5", id="one-hop"),
        pytest.param(
            xff(b"6.6.6.6, 1.2.3.4, 10.9.9.9"),
            "127.0.0.1",
            "1.2.3.4",
            b"1.2.3.4, 10.9.9.9, 127.0.0.1",
            id="spoofed-left-dropped",
        ),
        pytest.param(
            [(b"x-forwarded-for", b"1.2.3.4"), (b"X-Forwarded-For", b"10.1.1.1")],
            "10.0.0.5",
            "1.2.3.4",
            b"1.2.3.4, 10.1.1.1, 10.0.0.5",
            id="repeated-header",
        ),
        pytest.param(
            xff(b"10.2.2.2, 10.1.1.1"),
            "10.0.0.5",
            "10.2.2.2",
            b"10.2.2.2, 10.1.1.1, 10.0.0.5",
            id="all-trusted-leftmost",
        ),
        pytest.param(
            xff(b"1.2.3.4, garbage, 10.1.1.1"),
            "10.0.0.5",
            "10.1.1.1",
            b"10.1.1.1, 10.0.0.5",
            id="garbage-stops-walk",
        ),
        pytest.param(
            xff(b"1.2.3.4:5678"), "10.0.0.5", "1.2.3.4", b"1.2.3.4, 10.0.0.5", id="v4-port"
        ),
        pytest.param(
            xff(b"[2001:db8::1]:443"),
            "fd00::1",
            "2001:db8::1",
            b"2001:db8::1, fd00::1",
            id="v6-bracketed",
        ),
        pytest.param(
            xff(b"1.2.3.4"), "::ffff:10.0.0.5", "1.2.3.4", b"1.2.3.4, 10.0.0.5", id="v4-mapped"
        ),
        pytest.param(xff(b"1.2.3.4"), "testclient", "testclient", b"testclient", id="peer-not-ip"),
        pytest.param(xff(b"1.2.3.4"), None, None, b"", id="no-peer"),
    ],
)
def test_forwarded_for(
    headers: list[tuple[bytes, bytes]], peer: str | None, client: str | None, sent: bytes
) -> None:
    # GIVEN trusted proxies in 10/8, 127.0.0.1 and fd00::/8
    # WHEN a request arrives from `peer` with these headers
    found = forwarded_for(headers, peer, TRUSTED)

    # THEN the client is the first untrusted hop from the right, and only the vouched-for
    # chain plus the peer goes upstream
    assert found == (client, sent)


def test_parse_trusted() -> None:
    # GIVEN trusted proxies written as networks and single addresses
    # WHEN they are parsed
    networks = parse_trusted(["10.0.0.0/8", " 127.0.0.1 ", "::1"])

    # THEN single addresses are one-address networks
    assert networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param("10.0.0.1/8", id="host-bits-set"),
        pytest.param("not-an-ip", id="garbage"),
    ],
)
def test_parse_trusted_refuses_ambiguous(spec: str) -> None:
    # GIVEN a trusted-proxy entry that is not exactly a network
    # WHEN it is parsed
    # THEN it is refused rather than guessed at
    with pytest.raises(ValueError, match=spec):
        parse_trusted([spec])
