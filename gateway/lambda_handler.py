"""The Lambda entry: `handler = Mangum(app)` for ALB and API Gateway HTTP API events.

Everything costly is built once, at cold start, here at import: the config, the compiled
route table, the upstream objects. Lifespan is off, so a warm invocation reuses all of it
(the HTTP pools live on Mangum's one event loop, which persists between invocations).
"""

from __future__ import annotations

from mangum import Mangum

from gateway.app import create_app
from gateway.lambda_events import ALBEvent

app = create_app()
handler = Mangum(app, lifespan="off", custom_handlers=[ALBEvent])
