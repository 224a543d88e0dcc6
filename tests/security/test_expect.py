"""`Expect: 100-continue` against an upstream that never sends `100 Continue` (issue 10, item 2).

Through a real server under both uvicorn parsers, to a target with `timeout: 2s` and
`max_concurrency: 2`: every request ends within about its timeout, `Expect` never reaches the
upstream, and slots and upstream connections come back whatever the client does.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.parsed_gateways import PARSERS, gateway_under, one_target_table
from tests.support.rawhttp import build, host_port, request
from tests.support.servers import raw_tcp_upstream

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
BIG = 32 * 1024 * 1024
BIG_HEAD = f"HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n".encode()
# Bounds for the test itself, well above the target's 2 s: a hang fails, it does not block.
ANSWER_WITHIN = 8.0
SETTLE_WITHIN = 8.0


@dataclass
class SilentUpstream:
    """Answers `GET /ok` at once and `GET /big` with 32 MB; to anything else says nothing (no
    100, no answer) and keeps the connection until the gateway closes it (or 20 s pass).
    Counts the connections it holds (for /big: until all is sent or the gateway lets go)."""

    heads: list[bytes] = field(default_factory=list)
    held: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, conn: socket.socket) -> None:
        conn.settimeout(20)
        holding = False
        data = b""
        try:
            with conn:
                while chunk := conn.recv(65536):
                    data += chunk
                    while b"\r\n\r\n" in data:
                        head, _, data = data.partition(b"\r\n\r\n")
                        with self.lock:
                            self.heads.append(head)
                        if head.startswith(b"GET /ok "):
                            conn.sendall(OK)
                        elif head.startswith(b"GET /big "):
                            holding = True
                            self._count(+1)
                            conn.sendall(BIG_HEAD + bytes(BIG))
                        elif not holding:
                            holding = True
                            self._count(+1)
        except OSError:
            pass
        finally:
            if holding:
                self._count(-1)

    def _count(self, change: int) -> None:
        with self.lock:
            self.held += change

    def settled(self) -> bool:
        """True once no connection the gateway opened for a silent request is still open."""
        deadline = time.monotonic() + SETTLE_WITHIN
        while time.monotonic() < deadline:
            with self.lock:
                if self.held == 0:
                    return True
            time.sleep(0.05)
        return False


@pytest.fixture(params=PARSERS, ids=PARSERS)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, SilentUpstream]]:
    upstream = SilentUpstream()
    extra = "timeout: 2s, max_concurrency: 2, queue_timeout: 1s"
    with (
        raw_tcp_upstream(upstream) as upstream_url,
        gateway_under(request.param, tmp_path, one_target_table(upstream_url, extra)) as url,
    ):
        yield url, upstream


def expecting(body: bytes = b"hello") -> bytes:
    headers: list[tuple[str | bytes, str | bytes]] = [
        ("Host", "h"),
        ("Content-Length", str(len(body))),
        ("Expect", "100-continue"),
    ]
    return build("POST", "/upload", headers)


def leave_early(url: str, raw: bytes, body: bytes, stay: float) -> None:
    """Send `raw`, then `body` once the 100 Continue came, then stay a moment and leave."""
    with socket.create_connection(host_port(url), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(raw)
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 ")
        sock.sendall(body)
        time.sleep(stay)


def test_expect_is_not_forwarded_and_each_request_ends_within_the_timeout(
    served: tuple[str, SilentUpstream],
) -> None:
    url, upstream = served
    # GIVEN an upstream that never sends 100 Continue, nor any answer
    # WHEN two clients fill the target's two slots with Expect: 100-continue uploads
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(
                lambda _: request(
                    url,
                    expecting(),
                    body_chunks=[b"hello"],
                    chunk_pause=0.05,
                    timeout=ANSWER_WITHIN,
                ),
                range(2),
            )
        )
    # THEN each ends with the gateway's 504 (bounded by the target's timeout, not the client's)
    assert [answer.status for answer in answers] == [504, 504]
    assert all(answer.interim == [100] for answer in answers)
    # AND the upstream never saw Expect, and got the body anyway
    silent = [head for head in upstream.heads if head.startswith(b"POST ")]
    assert len(silent) == 2
    assert not any(b"\r\nexpect:" in head.lower() for head in silent)
    # AND no connection stays held, and a third client is served, not refused
    assert upstream.settled()
    assert request(url, build("GET", "/ok", [("Host", "h")]), timeout=ANSWER_WITHIN).status == 200


@pytest.mark.parametrize(
    ("body", "sent"),
    [(b"hello", b"hello"), (b"hello", b"he")],
    ids=["left-waiting-for-the-answer", "left-mid-body"],
)
def test_clients_that_leave_give_back_slots_and_connections(
    served: tuple[str, SilentUpstream], body: bytes, sent: bytes
) -> None:
    url, upstream = served
    # GIVEN the target's two slots taken by clients that send Expect: 100-continue
    # WHEN both leave (mid-body, or while waiting for the answer)
    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(leave_early, url, expecting(body), sent, 0.3) for _ in range(2)]:
            done.result(timeout=ANSWER_WITHIN)
    # THEN the upstream connections are given back within the timeout
    assert upstream.settled()
    # AND a third client is served, not refused for want of a slot
    answer = request(url, build("GET", "/ok", [("Host", "h")]), timeout=ANSWER_WITHIN)
    assert answer.status == 200


def test_a_client_that_stops_mid_body_is_ended_within_the_timeout(
    served: tuple[str, SilentUpstream],
) -> None:
    url, upstream = served
    # GIVEN two clients that send half of their bodies and then nothing, without leaving
    raw = build("POST", "/upload", [("Host", "h"), ("Content-Length", "10")]) + b"hello"
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: request(url, raw, timeout=ANSWER_WITHIN), range(2)))
    # THEN each is ended by the gateway within the target's timeout, as a request timeout
    assert [answer.status for answer in answers] == [408, 408]
    assert json.loads(answers[0].body)["error"] == "request_timeout"
    # AND their slots and upstream connections come back: a third client is served
    assert upstream.settled()
    assert request(url, build("GET", "/ok", [("Host", "h")]), timeout=ANSWER_WITHIN).status == 200


def test_a_client_that_stops_reading_gives_back_its_slot(
    served: tuple[str, SilentUpstream],
) -> None:
    url, upstream = served
    # GIVEN two clients that ask for a large answer, read its first bytes, then stop reading
    # without leaving
    clients = []
    for _ in range(2):
        sock = socket.create_connection(host_port(url), timeout=ANSWER_WITHIN)
        sock.sendall(build("GET", "/big", [("Host", "h")]))
        assert sock.recv(1024).startswith(b"HTTP/1.1 200 ")
        clients.append(sock)
    try:
        # THEN within the target's timeout the gateway lets go of both upstream connections
        assert upstream.settled()
        # AND of both slots: a third client is served
        answer = request(url, build("GET", "/ok", [("Host", "h")]), timeout=ANSWER_WITHIN)
        assert answer.status == 200
    finally:
        for sock in clients:
            sock.close()
