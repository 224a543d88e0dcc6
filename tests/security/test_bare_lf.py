"""A bare LF in an upstream's answer head is a 502, never a header line of its own (issue 10).

aiohttp reads a bare LF as the end of a header line; passed on, `X-A: one\\nSet-Cookie: ...`
would reach the client as a clean Set-Cookie. The gateway refuses such a head instead.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.parsed_gateways import PARSERS, gateway_under, one_target_table
from tests.support.rawhttp import RawResponse, build, request
from tests.support.servers import raw_tcp_upstream

REFUSED = {
    "lf-inside-a-value": b"HTTP/1.1 200 OK\r\nX-A: one\nSet-Cookie: evil=1\r\n"
    b"Content-Length: 2\r\n\r\nok",
    "lf-only-head": b"HTTP/1.1 200 OK\nSet-Cookie: evil=1\nContent-Length: 2\n\nok",
    "lf-after-an-interim-head": b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nX-A: one\nSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok",
}
PASSED = {
    "crlf-head": b"HTTP/1.1 200 OK\r\nX-A: one\r\nSet-Cookie: fine=1\r\n"
    b"Content-Length: 2\r\n\r\nok",
    "crlf-interim-then-final": b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nX-A: one\r\nSet-Cookie: fine=1\r\nContent-Length: 2\r\n\r\nok",
    "lf-in-the-body": b"HTTP/1.1 200 OK\r\nX-A: one\r\nSet-Cookie: fine=1\r\n"
    b"Content-Length: 2\r\n\r\n\n\n",
}


def answering(answer: bytes) -> Callable[[socket.socket], None]:
    def behaviour(conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn:
            conn.recv(65536)
            conn.sendall(answer)

    return behaviour


def through(parser: str, tmp_path: Path, answer: bytes) -> RawResponse:
    with (
        raw_tcp_upstream(answering(answer)) as upstream,
        gateway_under(parser, tmp_path, one_target_table(upstream, "breaker: off")) as url,
    ):
        return request(url, build("GET", "/x", [("Host", "h")]), timeout=10)


@pytest.mark.parametrize("parser", PARSERS, ids=PARSERS)
@pytest.mark.parametrize("answer", REFUSED.values(), ids=REFUSED.keys())
def test_a_bare_lf_in_the_head_is_a_502(parser: str, answer: bytes, tmp_path: Path) -> None:
    # GIVEN an upstream whose answer head has a line ended by LF alone
    # WHEN a client asks through the gateway
    reply = through(parser, tmp_path, answer)
    # THEN the gateway answers its own 502, and no header of that head reaches the client
    assert reply.status == 502
    assert json.loads(reply.body)["error"] == "upstream_unavailable"
    assert reply.all("set-cookie") == []
    assert reply.all("x-a") == []


@pytest.mark.parametrize("parser", PARSERS, ids=PARSERS)
@pytest.mark.parametrize("answer", PASSED.values(), ids=PASSED.keys())
def test_a_crlf_head_passes_whole(parser: str, answer: bytes, tmp_path: Path) -> None:
    # GIVEN an upstream whose head is well formed (LF only in the body, if anywhere)
    # WHEN a client asks through the gateway
    reply = through(parser, tmp_path, answer)
    # THEN its answer comes through
    assert reply.status == 200
    assert reply.all("set-cookie") == [b"fine=1"]
    assert reply.body == answer.rpartition(b"\r\n\r\n")[2]
