"""The Lambda entry: `handler = Mangum(app)` for ALB and API Gateway HTTP API events.

Everything costly is built once, at cold start, here at import: the config, the compiled
route table, the upstream objects. Lifespan is off, so a warm invocation reuses all of it
(the HTTP pools live on Mangum's one event loop, which persists between invocations).
"""

from __future__ import annotations

import asyncio
from typing import Any

from mangum import Mangum

from gateway.app import create_app
from gateway.lambda_events import ALBEvent
from gateway.reload import close_all

app = create_app()
_mangum = Mangum(app, lifespan="off", custom_handlers=[ALBEvent])


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Mangum's answer, after every span of this invocation is exported (bounded wait):
    the environment freezes once the handler returns.

    Every GATEWAY_CONFIG_TTL seconds an invocation first re-reads the config (file, S3 or
    SSM); a new valid table is swapped in, a broken one is logged and the last good serves.
    """
    reloader = app.state.reloader
    if reloader is not None and reloader.due():
        retired = reloader.check()
        if retired:
            asyncio.get_event_loop().run_until_complete(close_all(retired))
    try:
        return _mangum(event, context)
    finally:
        app.state.telemetry.flush()
