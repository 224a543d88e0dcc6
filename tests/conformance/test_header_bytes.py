"""Header bytes in are header bytes out, seen on the wire of a raw TCP upstream."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from tests.support.parsed_gateways import PARSERS, gateway_under, one_target_table
from tests.support.rawhttp import build, request
from tests.support.servers import raw_tcp_upstream

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Back: caf\xe9 \xc3\xa9\r\n\r\nok"


class RecordingUpstream:
    """Keeps the head of each request it is sent and answers with a non-ASCII header."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            with self.lock:
                self.heads.append(data.partition(b"\r\n\r\n")[0])
            conn.sendall(ANSWER)


@pytest.mark.parametrize("parser", PARSERS, ids=PARSERS)
def test_non_ascii_header_bytes_reach_the_upstream_and_come_back_unchanged(
    parser: str, tmp_path: Path
) -> None:
    # GIVEN a gateway in front of an upstream that records the bytes it is sent
    upstream = RecordingUpstream()
    with (
        raw_tcp_upstream(upstream) as upstream_url,
        gateway_under(parser, tmp_path, one_target_table(upstream_url)) as url,
    ):
        # WHEN a client sends a latin-1 value and a UTF-8 value
        raw = build(
            "GET",
            "/x",
            [("Host", "h"), ("X-Latin", b"caf\xe9"), ("X-Utf8", b"caf\xc3\xa9"), ("X-Hi", b"\xff")],
        )
        answer = request(url, raw)
    # THEN the upstream receives the very bytes, and the client the upstream's
    (head,) = upstream.heads
    sent = [line.partition(b": ") for line in head.split(b"\r\n")[1:]]
    headers = {name.lower(): value for name, _, value in sent}
    assert headers[b"x-latin"] == b"caf\xe9"
    assert headers[b"x-utf8"] == b"caf\xc3\xa9"
    assert headers[b"x-hi"] == b"\xff"
    assert answer.status == 200
    assert answer.all("x-back") == [b"caf\xe9 \xc3\xa9"]
