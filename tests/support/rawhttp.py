"""A byte-exact HTTP/1.x client over a raw socket, for conformance and attack tests.

No client library sits between the test and the server: the request goes out as the bytes
written, and the answer comes back as the bytes read, split into status, raw header lines
(repeats, order and byte values kept) and the body after framing (chunked, sized, or
delimited by close). Every call is bounded by `timeout`.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class RawHTTPError(Exception):
    """The server's answer could not be read as HTTP/1.x within the time allowed."""


@dataclass(slots=True)
class RawResponse:
    version: bytes
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    interim: list[int] = field(default_factory=list)  # 1xx statuses seen before the final one
    raw_head: bytes = b""

    def header(self, name: str) -> bytes | None:
        """The last value of a header (case-insensitive), or None."""
        wanted = name.lower().encode("latin-1")
        found = [value for key, value in self.headers if key.lower() == wanted]
        return found[-1] if found else None

    def all(self, name: str) -> list[bytes]:
        wanted = name.lower().encode("latin-1")
        return [value for key, value in self.headers if key.lower() == wanted]


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def request(
    url: str,
    raw: bytes,
    *,
    timeout: float = 10.0,
    head: bool = False,
    body_chunks: list[bytes] | None = None,
    chunk_pause: float = 0.0,
) -> RawResponse:
    """Send `raw` (then each of `body_chunks`, `chunk_pause` apart) to the server at `url`'s
    host and port, and read one answer. `head=True` reads no body (an answer to HEAD)."""
    host, port = host_port(url)
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(raw)
        for chunk in body_chunks or []:
            if chunk_pause:
                time.sleep(chunk_pause)
            sock.sendall(chunk)
        reader = _Reader(sock, deadline)
        return read_response(reader, head=head)


def build(
    method: str,
    target: str,
    headers: list[tuple[str | bytes, str | bytes]],
    body: bytes = b"",
    *,
    version: str = "HTTP/1.1",
) -> bytes:
    """The bytes of a request, exactly as given (no header added but those passed)."""
    lines = [f"{method} {target} {version}".encode("latin-1")]
    for name, value in headers:
        n = name if isinstance(name, bytes) else name.encode("latin-1")
        v = value if isinstance(value, bytes) else value.encode("latin-1")
        lines.append(n + b": " + v)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = b""
        self.closed = False

    def _fill(self) -> bool:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RawHTTPError("timed out reading the answer")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError as exc:
            raise RawHTTPError("timed out reading the answer") from exc
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.buffer += data
        return True

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise RawHTTPError(f"connection closed mid-line: {self.buffer[:200]!r}")
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise RawHTTPError(f"connection closed after {len(self.buffer)} of {size} bytes")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def until_close(self) -> bytes:
        while self._fill():
            pass
        data, self.buffer = self.buffer, b""
        return data


def read_response(reader: _Reader, *, head: bool = False) -> RawResponse:
    interim: list[int] = []
    while True:
        status_line = reader.line()
        head_lines = [status_line]
        version, _, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not code.isdigit():
            raise RawHTTPError(f"not a status line: {status_line[:200]!r}")
        headers: list[tuple[bytes, bytes]] = []
        while line := reader.line():
            head_lines.append(line)
            name, _, value = line.partition(b":")
            headers.append((name, value.strip(b" \t")))
        status = int(code)
        if 100 <= status < 200 and status != 101:
            interim.append(status)
            continue
        break
    response = RawResponse(version, status, reason, headers, b"", interim, b"\r\n".join(head_lines))
    if head or status in (204, 304):
        return response
    if any(value.lower() == b"chunked" for value in response.all("transfer-encoding")):
        response.body = _chunked(reader)
    elif (length := response.header("content-length")) is not None:
        response.body = reader.exactly(int(length))
    else:
        response.body = reader.until_close()
    return response


def _chunked(reader: _Reader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = reader.line().split(b";", 1)[0].strip()
        size = int(size_line, 16)
        if size == 0:
            while reader.line():  # trailers, until the empty line
                pass
            return b"".join(parts)
        parts.append(reader.exactly(size))
        reader.exactly(2)
