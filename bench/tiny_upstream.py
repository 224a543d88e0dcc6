"""Fallback upstream for ``proxy_bench.py`` when nginx is not installed.

A bare asyncio protocol (uvloop when available) answering every request with the same small
JSON body, keep-alive and pipelining included.  It assumes body-less requests (the bench only
sends GETs), so it is no general HTTP server.

    python bench/tiny_upstream.py --port 8080
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, cast

BODY = b'{"ok":true,"service":"upstream"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n%s" % (len(BODY), BODY)
)
END_OF_HEAD = b"\r\n\r\n"


class _Responder(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is no subclass of asyncio.Transport, though it has its API.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        complete = self._buffer.count(END_OF_HEAD)
        if complete and self._transport is not None:
            self._transport.write(RESPONSE * complete)
            self._buffer = self._buffer[self._buffer.rfind(END_OF_HEAD) + len(END_OF_HEAD) :]


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Responder, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: PLC0415

        run = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
