"""A streamed request body, sent on only while it keeps moving.

aiohttp starts its read timeout (the target's `timeout`) only once the whole body is written,
so while a body streams nothing bounds the request: a client that stops sending mid-body, or
an upstream that stops reading it, held the request, its concurrency slot and its upstream
connection for as long as the client cared to stay. Here each chunk must come from the client,
and the one before it go to the upstream, within the target's timeout; past it the request
ends, as a 408 when the gateway was waiting on the client, else a 504.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.errors import GatewayError, RequestTimeout, UpstreamTimeout


class Upload:
    __slots__ = ("_body", "_timeout", "waiting_on_client")

    def __init__(self, body: AsyncIterator[bytes], timeout: float) -> None:
        self._body = body
        self._timeout = timeout
        self.waiting_on_client = False

    async def chunks(self, deadline: asyncio.Timeout) -> AsyncIterator[bytes]:
        """The body, each step under `deadline` (the context around the upstream call); once
        it is all sent, the deadline is lifted and the wait for the answer is aiohttp's."""
        loop = asyncio.get_running_loop()
        deadline.reschedule(loop.time() + self._timeout)
        while True:
            self.waiting_on_client = True
            try:
                chunk = await anext(self._body)
            except StopAsyncIteration:
                break
            self.waiting_on_client = False
            deadline.reschedule(loop.time() + self._timeout)
            yield chunk
        self.waiting_on_client = False
        deadline.reschedule(None)

    def stalled(self, target: str) -> GatewayError:
        if self.waiting_on_client:
            return RequestTimeout(
                f"the request body stopped coming for {self._timeout:g}s", target=target
            )
        return UpstreamTimeout(
            f"target {target!r} took no body for {self._timeout:g}s", target=target
        )
