"""HttpUpstream: one pooled aiohttp session per target, streaming both ways.

aiohttp's client rather than httpx's: on the gateway's hot path httpx's pool costs about ten
times aiohttp's CPU per request, and the httpx-aiohttp transport re-parses the URL through
yarl, which rewrites percent-escapes in the path and query (`%41` becomes `A`). Here the raw
path and query go out byte for byte (`encoded=True`). The choice stays behind `Upstream`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from gateway.config.model import HttpTarget
from gateway.errors import (
    ConnectFailed,
    ConnectTimedOut,
    GatewayError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.headers import response_headers
from gateway.upstreams.base import UpstreamRequest, UpstreamResponse
from gateway.upstreams.header_bytes import header_pairs
from gateway.upstreams.upload import Upload

if TYPE_CHECKING:
    import aiohttp

# Shorter than the 5 s keep-alive of uvicorn (and most servers), so the pool never reuses a
# connection the upstream is about to close.
KEEPALIVE_SECONDS = 4.0
POOL_LIMIT = 1024
# aiohttp adds these when absent; a proxy must not invent request headers.
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


def _URL(text: str, *, encoded: bool) -> Any:  # noqa: N802 - stands for yarl.URL
    # cold start: aiohttp only once an http target is first called
    from yarl import URL

    return URL(text, encoded=encoded)


class HttpUpstream:
    def __init__(self, target: HttpTarget) -> None:
        self.name = target.name
        self.kind = "http"
        self._base = target.url.encode("ascii")
        self._timeout = target.timeout
        self._connect_timeout = target.protection.connect_timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # cold start: aiohttp only once an http target is first called
        # Made on first use, inside the running loop (aiohttp binds a session to its loop);
        # aiohttp itself is imported then too: a cold start that needs no upstream skips it.
        import aiohttp

        if self._session is None or self._session.closed:
            # cold start: aiohttp only once an http target is first called
            from gateway.upstreams.strict_heads import strict_connector

            connector = strict_connector(
                limit=POOL_LIMIT, keepalive_timeout=KEEPALIVE_SECONDS, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                skip_auto_headers=SKIP_AUTO_HEADERS,
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self._connect_timeout, sock_read=self._timeout
                ),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def forward(self, request: UpstreamRequest) -> UpstreamResponse:
        session = self._client()
        url = _URL((self._base + request.target_path_qs()).decode("latin-1"), encoded=True)
        headers = header_pairs(request.headers)
        upload = None if isinstance(request.body, bytes) else Upload(request.body, self._timeout)
        try:
            # The session's sock_connect/sock_read timeouts bound the wait for an answer once
            # the body is sent; while a streamed body is sent, `upload` bounds each step.
            async with asyncio.timeout(None) as deadline:
                data = (request.body or None) if upload is None else upload.chunks(deadline)
                response = await session.request(
                    request.method,
                    url,
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                    compress=False,
                )
        except TimeoutError as exc:
            if upload is not None and deadline.expired():
                raise upload.stalled(self.name) from exc
            raise self._translate(exc) from exc
        except Exception as exc:
            raise self._translate(exc) from exc
        if response.content.is_eof():
            # The whole body came with the head (most small answers): take it as it is.
            try:
                body = await response.read()
            except Exception as exc:
                response.close()
                raise self._translate(exc) from exc
            response.release()
            answer = response_headers(response.raw_headers)
            return UpstreamResponse.complete(response.status, answer, body)
        # Still coming: a small one is read whole if it arrives soon (forwarding.py), the rest
        # streams as it comes.
        return UpstreamResponse(
            response.status,
            response_headers(response.raw_headers),
            self._stream(response),
            self._closer(response),
        )

    async def _stream(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        content = response.content
        try:
            while chunk := await content.readany():
                yield chunk
        except Exception as exc:
            response.close()
            raise self._translate(exc) from exc

    @staticmethod
    def _closer(response: aiohttp.ClientResponse):  # type: ignore[no-untyped-def]
        async def close() -> None:
            if response.content.at_eof():
                response.release()
            else:
                response.close()

        return close

    def _translate(self, exc: BaseException) -> GatewayError:
        # cold start: aiohttp only once an http target is first called
        import aiohttp

        cause: BaseException | None = exc
        while cause is not None:
            # Our own error (a body over its limit) raised inside aiohttp's body writer.
            if isinstance(cause, GatewayError):
                return cause
            cause = cause.__cause__ or cause.__context__
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return ConnectTimedOut(
                f"cannot connect to target {self.name!r} within {self._connect_timeout:g}s",
                target=self.name,
            )
        if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
            return UpstreamTimeout(
                f"target {self.name!r} did not answer within {self._timeout:g}s", target=self.name
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            reason = exc.os_error.strerror or str(exc.os_error)
            return ConnectFailed(
                f"cannot connect to target {self.name!r}: {reason}", target=self.name
            )
        if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
            return UpstreamUnavailable(
                f"target {self.name!r} closed the connection before answering", target=self.name
            )
        if isinstance(exc, aiohttp.ClientError):
            return UpstreamUnavailable(
                f"target {self.name!r} sent an invalid answer ({type(exc).__name__})",
                target=self.name,
            )
        raise exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
