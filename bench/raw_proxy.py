"""Minimal raw-ASGI reverse proxy on aiohttp's client: the practical ceiling for a Python proxy.

No framework, no routing: every request is forwarded (method, path, raw query, headers,
streamed body) to ``RAW_PROXY_UPSTREAM`` through one pooled ``aiohttp.ClientSession``
and the answer is streamed back.  Used by ``bench/proxy_bench.py`` as the ``raw`` target:

    RAW_PROXY_UPSTREAM=http://127.0.0.1:8080 uvicorn bench.raw_proxy:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RawHeaders = Iterable[tuple[bytes, bytes]]

UPSTREAM_ENV = "RAW_PROXY_UPSTREAM"
POOL_LIMIT = 200
BAD_GATEWAY = 502

# Hop-by-hop headers (RFC 9110 7.6.1) never cross a proxy; Host is set by the client for
# the upstream URL.  Upstream Date/Server are dropped because uvicorn adds its own.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_DROP_REQUEST = _HOP_BY_HOP | {b"host"}
_DROP_RESPONSE = _HOP_BY_HOP | {b"date", b"server"}
# Headers aiohttp would otherwise invent; a proxy forwards only what the client sent.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent")


def _request_headers(scope: Scope) -> tuple[list[tuple[str, str]], bool]:
    """Forwardable request headers (plus X-Forwarded-For) and whether a body follows."""
    headers: list[tuple[str, str]] = []
    has_body = False
    forwarded_for = ""
    for name, value in scope["headers"]:
        if name == b"content-length":
            has_body = value.strip() != b"0"
        elif name == b"transfer-encoding":
            has_body = True
        elif name == b"x-forwarded-for":
            forwarded_for = value.decode("latin-1") + ", "
            continue
        if name not in _DROP_REQUEST:
            headers.append((name.decode("latin-1"), value.decode("latin-1")))
    client = scope.get("client")
    if client:
        headers.append(("X-Forwarded-For", forwarded_for + client[0]))
    return headers, has_body


def _response_headers(raw: RawHeaders) -> list[tuple[bytes, bytes]]:
    """Upstream response headers, lowercased as ASGI wants, minus hop-by-hop ones."""
    out: list[tuple[bytes, bytes]] = []
    for name, value in raw:
        lower = name.lower()
        if lower not in _DROP_RESPONSE:
            out.append((lower, value))
    return out


def _target(scope: Scope) -> str:
    """Path and query exactly as received (no re-quoting)."""
    raw_path: bytes | None = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(scope["path"])
    query: bytes = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    """Stream the client's body chunks as they arrive."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body: bytes = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _stream_response(content: aiohttp.StreamReader, send: Send) -> None:
    """Send the upstream body chunk by chunk; the last chunk carries ``more_body=False``."""
    while True:
        chunk = await content.readany()
        if not chunk:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        more = not content.at_eof()
        await send({"type": "http.response.body", "body": chunk, "more_body": more})
        if not more:
            return


async def _lifespan(
    receive: Receive, send: Send, on_shutdown: Callable[[], Awaitable[None]]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _bad_gateway(send: Send) -> None:
    body = b'{"error":"bad gateway"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": BAD_GATEWAY, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RawProxy:
    """ASGI app forwarding everything to one upstream base URL."""

    def __init__(self, upstream: str | None = None) -> None:
        self._upstream = upstream
        self._base = ""
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        """The shared session, created on first use so it binds to the running loop."""
        if self._session is None:
            upstream = self._upstream or os.environ.get(UPSTREAM_ENV, "")
            if not upstream:
                raise RuntimeError(f"set {UPSTREAM_ENV} to the upstream base URL")
            self._base = upstream.rstrip("/")
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL_LIMIT),
                auto_decompress=False,
                skip_auto_headers=_NO_AUTO_HEADERS,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._proxy(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send, self.aclose)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = self._client()
        headers, has_body = _request_headers(scope)
        url = URL(self._base + _target(scope), encoded=True)
        started = False
        try:
            async with session.request(
                scope["method"],
                url,
                headers=headers,
                data=_request_body(receive) if has_body else None,
                allow_redirects=False,
            ) as resp:
                await send(
                    {
                        "type": "http.response.start",
                        "status": resp.status,
                        "headers": _response_headers(resp.raw_headers),
                    }
                )
                started = True
                await _stream_response(resp.content, send)
        except (aiohttp.ClientError, TimeoutError):
            if started:
                raise  # mid-body: let the server drop the connection
            await _bad_gateway(send)


app = RawProxy()
