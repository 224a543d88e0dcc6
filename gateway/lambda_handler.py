"""The Lambda entry: `handler` for ALB and API Gateway HTTP API (and function URL) events.

Everything costly is built once, at cold start, here at import: the config, the compiled
route table, the upstream objects. A warm invocation reuses all of it (the HTTP pools live
on one event loop, which persists between invocations).

ALB and HTTP API events take the gateway's own short cycle (`gateway.alb.events` builds
the scope and the answer, the app runs on the one loop); API Gateway's REST events go
through Mangum. Whatever the event, the handler answers: a malformed event is a JSON 400
(what a client could have sent) or 502 (what only a broken integration could send, logged),
an answer too large for the caller a JSON 502 `response_too_large`. It never raises, since
a Lambda invocation error reaches the client as the ALB's own bare 502.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mangum import Mangum

from gateway.alb.events import Adapter, adapter_for, sized_answer
from gateway.alb.fields import BrokenEvent, EventRefused, ResponseTooLarge
from gateway.app import create_app, settle_gc
from gateway.asgi import Message, Scope
from gateway.errors import GatewayError, InternalError, render
from gateway.fleet.store import StoreSnapshot
from gateway.headers import RawHeaders
from gateway.reload import close_all
from gateway.shadow_lambda import compare_entry, hand_off, is_comparison
from gateway.telemetry.access_log import emit, state_record

logger = logging.getLogger("gateway.lambda")

app = create_app()
_mangum = Mangum(app, lifespan="off")
_loop = asyncio.get_event_loop()
if app.state.runtime.current.store is not None:
    # One pooled connection (a TLS handshake) at cold start, on the loop warm calls reuse.
    _loop.run_until_complete(app.state.runtime.current.store.warm_up())
app.state.shadowing.hand_off = hand_off
settle_gc(collect=False)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The answer, after every span of this invocation is exported (bounded wait): the
    environment freezes once the handler returns.

    Every GATEWAY_CONFIG_TTL seconds an invocation first re-reads the config (file, S3 or
    SSM); a new valid table is swapped in, a broken one is logged and the last good serves.
    """
    reloader = app.state.reloader
    if reloader is not None and reloader.due():
        retired = reloader.check()
        if retired:
            _loop.run_until_complete(close_all(retired))
    try:
        if is_comparison(event):  # the shadow comparison this function sent itself
            return compare_entry(event, app.state.runtime.current, app.state.shadowing)
        adapter = adapter_for(event, context)
        if adapter is None:
            return _rest_api(event, context)
        return _serve(adapter)
    finally:
        store = app.state.runtime.current.store
        if store is not None:
            if store.pending:
                # Released slots ride with a later batch on a server; here nothing runs once
                # the handler returns, so they go now (one bounded round trip) rather than be
                # held by a frozen environment until their leases expire.
                _loop.run_until_complete(store.drain())
            _state_metrics(store.snapshot())
        app.state.telemetry.flush()


_NO_CALLS = StoreSnapshot(True, 0, 0, (), 0.0, 0)
_seen = _NO_CALLS


def _state_metrics(now: StoreSnapshot) -> None:
    """This invocation's Redis use as an EMF line, when there was any (and the log is on)."""
    global _seen  # noqa: PLW0603 - one environment, one invocation at a time
    before, _seen = _seen, now
    if now.calls < before.calls:  # a reload brought another store, counting from zero
        before = _NO_CALLS
    trips, failed = now.calls - before.calls, now.unavailable_total - before.unavailable_total
    if (trips or failed) and app.state.telemetry.access_log is not None:
        emit(state_record(trips, failed, now.latency_sum - before.latency_sum))


def _serve(adapter: Adapter) -> dict[str, Any]:
    try:
        scope, body = adapter.request()
        status, headers, answer_body = _loop.run_until_complete(_run(scope, body, adapter))
        try:
            answer = sized_answer(adapter, status, headers, answer_body)
        except ResponseTooLarge as error:
            raise error.located(*_where(headers)) from None
    except EventRefused as error:
        logger.info("event refused: %s", error.message)
        return _error(adapter, error)
    except BrokenEvent as error:
        logger.warning("malformed Lambda event: %s", error.message)
        return _error(adapter, error)
    except ResponseTooLarge as error:
        logger.warning("answer not returned: %s", error.message)
        return _error(adapter, error)
    except Exception:
        logger.exception("the Lambda entry failed")
        return _error(adapter, InternalError("internal error"))
    return answer


def _rest_api(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = _mangum(event, context)
    except Exception:
        logger.exception("the Lambda entry failed on an API Gateway REST event")
        status, headers, body = render(BrokenEvent("the event could not be served"))
        return {"statusCode": status, "headers": dict(_text(headers)), "body": body.decode()}
    return answer


def _error(adapter: Adapter, error: GatewayError) -> dict[str, Any]:
    status, headers, body = render(error)
    return adapter.answer(status, headers, body)


def _where(headers: RawHeaders) -> tuple[str | None, str | None]:
    found = dict(_text(headers))
    return found.get("x-gateway-route"), found.get("x-gateway-target")


def _text(headers: RawHeaders) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]


async def _run(scope: Scope, body: bytes, adapter: Adapter) -> tuple[int, RawHeaders, bytes]:
    """One ASGI request with its whole body, the whole answer collected.

    On Lambda no client can leave mid-answer: once the body is delivered, `receive` waits
    until the answer is complete (reporting a disconnect at once would make the proxy drop
    a streamed answer). An answer over the adapter's limit can never fit, so the upstream is not
    read further: `send` raises ResponseTooLarge.
    """
    delivered = False
    finished = asyncio.Event()
    status = 500
    headers: RawHeaders = []
    chunks: list[bytes] = []
    size = 0
    limit = adapter.limit
    too_large = f"the answer's body is over {adapter.limit_name}"

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            await finished.wait()
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status, headers, size
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(too_large)
            chunks.append(chunk)

    try:
        await app(scope, receive, send)
    except ResponseTooLarge:
        pass
    finally:
        finished.set()
    if size > limit:
        raise ResponseTooLarge(too_large).located(*_where(headers))
    return status, headers, b"".join(chunks)
