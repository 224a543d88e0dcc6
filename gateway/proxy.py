"""The request's path through the gateway: match -> pick -> forward -> respond.

Pure ASGI, so a proxied request pays for no framework routing; `/_gateway/*` goes on to
the FastAPI admin app underneath.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from gateway.admission.guard import request_key
from gateway.asgi import ASGIApp, Receive, Scope, Send
from gateway.config.model import Route
from gateway.decision import decide, is_admin_path, request_target
from gateway.errors import (
    ClientDisconnected,
    GatewayError,
    InternalError,
    NoRouteMatched,
    PayloadTooLarge,
    send_error,
)
from gateway.forwarding import Served, forward
from gateway.headers import HeaderView, request_headers
from gateway.routing import RouteMatch
from gateway.runtime import Runtime
from gateway.shadowing import Shadowing, Tee
from gateway.splitting import pick
from gateway.telemetry.exchange import Ending, Telemetry
from gateway.upstreams.base import Body, UpstreamRequest, UpstreamResponse

if TYPE_CHECKING:
    from gateway.admission.auth import Principal

logger = logging.getLogger("gateway.proxy")

# nginx's code for "the client closed the connection before the answer", in logs and metrics.
CLIENT_CLOSED = 499
# Past this size (or with no length) an answer is streamed while watching for the client
# leaving, so a large download stops pulling from the upstream once nobody reads it.
WATCH_ABOVE = 256 * 1024


class Proxy:
    """ASGI entry: proxies every HTTP request outside /_gateway, hands the rest to `admin`."""

    def __init__(
        self,
        admin: ASGIApp,
        runtime: Callable[[], Runtime],
        telemetry: Telemetry,
        shadowing: Shadowing | None = None,
    ) -> None:
        self.admin = admin
        self.runtime = runtime
        self.telemetry = telemetry
        self.shadowing = shadowing or Shadowing()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_admin_path(scope["path"]):
            await self.admin(scope, receive, send)
            return
        await handle(scope, receive, send, self.runtime(), self.telemetry, shadowing=self.shadowing)


async def handle(  # noqa: PLR0913 - the shadow copies' state is keyword-only, optional
    scope: Scope,
    receive: Receive,
    send: Send,
    runtime: Runtime,
    telemetry: Telemetry,
    *,
    shadowing: Shadowing | None = None,
) -> None:
    headers = HeaderView(scope["headers"])
    exchange = telemetry.begin(scope, headers)
    reader = BodyReader(receive)
    route: Route | None = None
    target: str | None = None
    served: Served | None = None
    end: Ending | None = None
    tee: Tee | None = None
    try:
        decision = decide(runtime.table, scope["method"], request_target(scope), scope["headers"])
        matched, raw_path = decision.match, decision.raw_path
        if decision.reserved:
            raise NoRouteMatched(f"{decision.path} is reserved for the admin API")
        if matched is None:
            raise NoRouteMatched(f"no route for {scope['method']} {decision.path}")
        route = matched.route
        client, chain = runtime.client_chain(scope)
        who = await runtime.admissions[route.name].admit(scope, raw_path, headers, client)
        key = sticky_key(headers, route, who, client)
        target = pick(route.split, key)
        exchange.routed(route, target, sticky=key is not None)
        body = await reader.body(scope, route.limits.max_body)
        request = upstream_request(scope, matched, raw_path, body, chain)
        served = await forward(runtime.pair, route, target, request)
        if served.error is not None:
            raise served.error
        if route.shadow is not None and shadowing is not None and served.reply is not None:
            tee = shadowing.start(route, served.target, request, served.reply)
    except GatewayError as error:
        located = error.located(route.name if route else None, _answering(served, target))
        sent = await send_error(send, located)
        end = Ending(error.status_code, sent, route, located, served)
    except ClientDisconnected:
        end = Ending(CLIENT_CLOSED, 0, route, None, served)
    except Exception:
        # A bug of ours: a JSON 500 that says nothing of the internals; the log says all.
        logger.exception("unexpected failure on %s %s", scope["method"], scope["path"])
        internal = InternalError("internal error").located(
            route.name if route else None, _answering(served, target)
        )
        sent = await send_error(send, internal)
        end = Ending(internal.status_code, sent, route, internal, served)
    else:
        end = await respond(send, served, route, reader)
        if tee is not None and shadowing is not None:
            shadowing.finish(runtime, tee, end.status, on_lambda="aws.event" in scope)
    finally:
        exchange.finish(end or Ending(0), reader.received)


def _answering(served: Served | None, picked: str | None) -> str | None:
    return served.target if served is not None else picked


def sticky_key(
    headers: HeaderView, route: Route, who: Principal | None, client: str | None
) -> str | None:
    return None if route.sticky is None else request_key(route.sticky, headers, client, who)


def upstream_request(
    scope: Scope, matched: RouteMatch, raw_path: bytes, body: Body, chain: bytes = b""
) -> UpstreamRequest:
    return UpstreamRequest(
        method=scope["method"],
        path=matched.upstream_path(raw_path),
        query=scope.get("query_string", b""),
        headers=request_headers(scope["headers"], chain, scope.get("scheme", "http")),
        body=body,
        route=matched.route.name,
    )


def _no_body(scope: Scope) -> bool:
    """HTTP/1.x framing: a request with neither Content-Length nor Transfer-Encoding has no
    body. (Lambda events and HTTP/2 carry no such promise, so there the body is read.)"""
    if scope.get("http_version") not in ("1.1", "1.0") or "aws.event" in scope:
        return False
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return False
    return True


class BodyReader:
    """The client's body: whole when it came in one message, else streamed as sent."""

    __slots__ = ("complete", "limit", "receive", "received")

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.complete = False
        self.received = 0
        self.limit: int | None = None

    async def body(self, scope: Scope, limit: int | None = None) -> Body:
        self.limit = limit
        if _no_body(scope):
            self.complete = True
            return b""
        message = await self.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        first: bytes = message.get("body", b"")
        self.received = len(first)
        self._check_limit()
        if not message.get("more_body", False):
            self.complete = True
            return first
        return self._rest(first)

    async def _rest(self, first: bytes) -> AsyncIterator[bytes]:
        if first:
            yield first
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected("client left during the upload")
            chunk = message.get("body", b"")
            if chunk:
                self.received += len(chunk)
                self._check_limit()
                yield chunk
            if not message.get("more_body", False):
                self.complete = True
                return

    def _check_limit(self) -> None:
        if self.limit is not None and self.received > self.limit:
            raise PayloadTooLarge(f"body over {self.limit} bytes")


async def respond(send: Send, served: Served, route: Route, reader: BodyReader) -> Ending:
    """Stream the upstream's answer to the client; how the request ended."""
    reply = served.reply
    if reply is None:
        raise AssertionError("respond is given an answer, never an error")
    headers = [
        *reply.headers,
        (b"x-gateway-route", route.name.encode()),
        (b"x-gateway-target", served.target.encode()),
    ]
    if served.fell_back is not None:
        headers.append((b"x-gateway-fallback", b"true"))
    if reply.whole is not None:
        await reply.close()
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.whole})
        return Ending(reply.status, len(reply.whole), route, None, served)
    status, error = reply.status, None
    watcher = _watch_disconnect(reader, reply)
    sent = 0
    try:
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        # Each chunk goes out as it comes (a drip's first byte is not held back for the
        # next); the one that completes a known length is the last message.
        length = _length(reply)
        async for chunk in reply.body:
            if watcher is not None and watcher.done():
                return Ending(CLIENT_CLOSED, sent, route, None, served)
            sent += len(chunk)
            done = length is not None and sent >= length
            await send({"type": "http.response.body", "body": chunk, "more_body": not done})
            if done:
                return Ending(status, sent, route, None, served)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except GatewayError as failure:
        # Headers are gone already: all that is left is to cut the connection short.
        logger.warning("upstream failed mid-answer on route %s: %s", route.name, failure)
        status, error = failure.status_code, failure
    finally:
        if watcher is not None:
            watcher.cancel()
        await reply.close()
    return Ending(status, sent, route, error, served)


def _length(reply: UpstreamResponse) -> int | None:
    for name, value in reply.headers:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _watch_disconnect(reader: BodyReader, reply: UpstreamResponse) -> asyncio.Task[None] | None:
    if not reader.complete:
        return None
    for name, value in reply.headers:
        if name == b"content-length" and value.isdigit() and int(value) <= WATCH_ABOVE:
            return None
    return asyncio.ensure_future(_until_disconnect(reader.receive))


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
