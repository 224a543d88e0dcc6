"""The Lambda entry: `handler` for ALB and API Gateway HTTP API events, through Mangum.

Everything costly is built once, at cold start, here at import: the config, the compiled
route table, the upstream objects. Lifespan is off, so a warm invocation reuses all of it
(the HTTP pools live on Mangum's one event loop, which persists between invocations).

ALB events, the gateway's own traffic, take a shorter cycle than Mangum's (no queue, no
extra task, no logging per event): the same ALBEvent adapter Mangum uses builds the scope
and the answer, and the app runs on Mangum's loop. Other events go through Mangum itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mangum import Mangum
from mangum.types import LambdaConfig

from gateway.app import create_app, settle_gc
from gateway.asgi import Message, Scope
from gateway.lambda_events import ALBEvent
from gateway.reload import close_all

app = create_app()
_mangum = Mangum(app, lifespan="off", custom_handlers=[ALBEvent])
_loop = asyncio.get_event_loop()
_config: LambdaConfig = _mangum.config
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
        if ALBEvent.infer(event, context, _config):
            return _alb(ALBEvent(event, context, _config))
        return _mangum(event, context)
    finally:
        app.state.telemetry.flush()


def _alb(adapter: ALBEvent) -> dict[str, Any]:
    status, headers, body = _loop.run_until_complete(_run(adapter.scope, adapter.body))
    return adapter({"status": status, "headers": headers, "body": body})


async def _run(scope: Scope, body: bytes) -> tuple[int, list[Any], bytes]:
    """One ASGI request with its whole body, the whole answer collected."""
    delivered = False
    status = 500
    headers: list[Any] = []
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], message.get("headers", [])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, headers, b"".join(chunks)
