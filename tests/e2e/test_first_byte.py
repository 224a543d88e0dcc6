"""A small answer that drips reaches the client as it comes, not once it is whole."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from tests.support.gateways import GatewayFactory
from tests.support.parsed_gateways import one_target_table
from tests.support.rawhttp import build, host_port
from tests.support.servers import raw_tcp_upstream

HOLD_AT_MOST = 10.0


class Drip:
    """Sends the head and half of a 10-byte body, then holds the rest until told (or until
    HOLD_AT_MOST): whether the client saw the first half while it was held is the question."""

    def __init__(self) -> None:
        self.client_saw_first_half = threading.Event()
        self.held_until_seen = False

    def __call__(self, conn: socket.socket) -> None:
        conn.settimeout(HOLD_AT_MOST)
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
            self.held_until_seen = self.client_saw_first_half.wait(HOLD_AT_MOST)
            conn.sendall(b"-last")


def test_a_small_dripping_answer_streams_from_its_first_byte(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    # GIVEN an upstream that sends half of a small sized body, then waits
    drip = Drip()
    with raw_tcp_upstream(drip) as upstream:
        gateway = start_gateway(one_target_table(upstream))
        # WHEN a client asks through the gateway
        with socket.create_connection(host_port(gateway), timeout=HOLD_AT_MOST * 2) as sock:
            sock.sendall(build("GET", "/drip", [("Host", "h")]))
            received = b""
            while not received.endswith(b"first") and b"-last" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            drip.client_saw_first_half.set()
            while b"-last" not in received and (chunk := sock.recv(65536)):
                received += chunk
    # THEN the first half reached the client while the upstream still held the rest
    assert drip.held_until_seen
    # AND the whole body arrived, once
    assert received.endswith(b"\r\n\r\nfirst-last")
