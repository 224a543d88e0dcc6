"""The contract every upstream meets, and the request/response it carries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from gateway.headers import RawHeaders

Body = bytes | AsyncIterator[bytes]


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """What to send: the raw path after rewrite, the raw query, cleaned headers, the body.

    `body` is the whole body when it arrived in one piece, else a stream read as it is sent.
    """

    method: str
    path: bytes
    query: bytes
    headers: RawHeaders
    body: Body
    route: str

    def with_headers(self, headers: RawHeaders) -> UpstreamRequest:
        return replace(self, headers=headers)

    def target_path_qs(self) -> bytes:
        return self.path + (b"?" + self.query if self.query else b"")


async def _nothing_to_close() -> None:
    return None


async def _single(chunk: bytes) -> AsyncIterator[bytes]:
    if chunk:
        yield chunk


@dataclass(slots=True)
class UpstreamResponse:
    """An upstream's answer: status and raw headers now, the body as it streams.

    `close` must be awaited once the body is consumed or abandoned (it frees the connection).
    """

    status: int
    headers: RawHeaders
    body: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]] = _nothing_to_close
    whole: bytes | None = None
    """The whole body, when it was read before answering (then `body` yields just it)."""

    @classmethod
    def complete(cls, status: int, headers: RawHeaders, body: bytes) -> UpstreamResponse:
        return cls(status, headers, _single(body), whole=body)


class Upstream(Protocol):
    name: str
    kind: str

    async def forward(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...
