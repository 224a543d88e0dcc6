"""create_app(...) -> FastAPI: the proxy in front, the /_gateway admin API behind it.

`gateway.app:app` reads the config named by GATEWAY_CONFIG (default routes.yaml) when it is
first looked up, so importing this module for `create_app` loads nothing.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from gateway.admin import AdminGate, admin_router
from gateway.asgi import Receive, Scope, Send
from gateway.config.model import ConfigError, GatewayConfig, HttpTarget
from gateway.config.store import load_from, store_for, ttl_for
from gateway.fleet.parity import RedisParityStore
from gateway.parity.recorder import Recorder
from gateway.protection.breaker import OnChange
from gateway.proxy import Proxy
from gateway.reload import Reloader, RuntimeHolder
from gateway.runtime import build_runtime
from gateway.shadowing import Shadowing
from gateway.telemetry.exchange import Telemetry

DEFAULT_CONFIG = "routes.yaml"
logger = logging.getLogger("gateway")


class GatewayApp(FastAPI):
    """FastAPI for /_gateway; every other HTTP request goes straight to the proxy.

    Starlette's middleware stack (error middleware, exception middleware, router) would
    cost a proxied request more than the forwarding itself, so the proxy sits in front.
    """

    proxy: Proxy | None = None
    admin_routes: Callable[[], APIRouter] | None = None

    async def admin_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.admin_routes is not None:
            # Built on first use: FastAPI's route building costs a Lambda cold start ~50 ms
            # that a proxied request never needs.
            routes, self.admin_routes = self.admin_routes, None
            self.include_router(routes())
        await super().__call__(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.proxy is not None:
            await self.proxy(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


# The cyclic collector runs when live container objects grow by its first threshold.
# Requests in flight hold a few dozen each, so at the default of 700 it ran every few
# requests (about 8% of a proxied request's CPU here) while finding next to no garbage.
GC_THRESHOLDS = (20_000, 50, 100)


def settle_gc(*, collect: bool = True) -> None:
    """Call once everything long-lived is built: what exists then lives as long as the
    process and leaves the collector's scans, and collections become rarer. A Lambda cold
    start skips the full collection first (tens of ms) and freezes its little garbage."""
    if collect:
        gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def warm_imports(config: GatewayConfig) -> None:
    """On a server, import now what the first request to an http target would (aiohttp,
    ~110 ms): there, that import blocked the loop while other first requests waited on Redis,
    past `state.timeout`, so they fell back to local limits. A Lambda cold start keeps the
    deferral (one request at a time, and a function that calls no http target skips it)."""
    if any(isinstance(target, HttpTarget) for target in config.targets.values()):
        # cold start: aiohttp only where an http target exists (servers only, see above)
        import gateway.upstreams.strict_heads  # noqa: F401 - imported for its cost now


def config_path_from_env() -> str:
    return os.environ.get("GATEWAY_CONFIG") or DEFAULT_CONFIG


def create_app(
    config_path: str | None = None,
    *,
    config: GatewayConfig | None = None,
    telemetry: Telemetry | None = None,
    shadowing: Shadowing | None = None,
) -> GatewayApp:
    """Build the gateway; raises ConfigError (every problem listed) before serving anything.

    With a path (or GATEWAY_CONFIG: a file, s3://bucket/key or ssm:/name) the table is
    re-read every GATEWAY_CONFIG_TTL seconds and on SIGHUP; a given `config` stays fixed.
    Telemetry comes from the OTEL_* and GATEWAY_* environment unless one is given; shadow
    parity is counted per process, or fleet-wide on Redis when the table has `state:`.
    """
    source = None
    if config is None:
        source = store_for(config_path or config_path_from_env())
        config = load_from(source)
    telemetry = telemetry or Telemetry.from_env()
    on_change = breaker_reporter(telemetry)
    holder = RuntimeHolder(
        build_runtime(
            config,
            on_change,
            tracing=telemetry.tracing,
            state_observer=telemetry.metrics.state_observer(),
        )
    )
    reloader = None
    if source is not None:
        reloader = Reloader(source, holder, ttl_for(source), on_breaker_change=on_change)
    if shadowing is None and holder.current.store is not None:
        # With `state:` the parity counters are the fleet's, as the protections are.
        shadowing = Shadowing(recorder=Recorder(RedisParityStore(holder.current.store)))
    shadowing = shadowing or Shadowing()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        warm_imports(holder.current.config)
        settle_gc()
        if holder.current.store is not None:
            await holder.current.store.warm_up()
        watcher = asyncio.create_task(reloader.watch()) if reloader is not None else None
        yield
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if reloader is not None:
            await reloader.aclose()
        await shadowing.aclose()
        await holder.current.aclose()
        telemetry.tracing.shutdown()

    app = GatewayApp(
        title="Strangler gateway",
        lifespan=lifespan,
        # the docs page loads its assets from a CDN, which a private VPC cannot reach: off
        docs_url=None,
        redoc_url=None,
        openapi_url="/_gateway/openapi.json",
    )
    app.state.runtime = holder
    app.state.reloader = reloader
    app.state.telemetry = telemetry
    app.state.shadowing = shadowing
    app.admin_routes = lambda: admin_router(holder.get, telemetry.metrics, reloader, shadowing)
    app.add_exception_handler(HTTPException, _admin_error)
    # Every /_gateway path (health aside) passes the admin guard before FastAPI sees it.
    app.proxy = Proxy(AdminGate(app.admin_app, holder.get), holder.get, telemetry, shadowing)
    return app


def breaker_reporter(telemetry: Telemetry) -> OnChange:
    """Breaker state changes become a log line and a counter."""

    def changed(target: str, old: str, new: str) -> None:
        logger.warning("circuit breaker of target %s: %s -> %s", target, old, new)
        telemetry.metrics.observe_breaker(target, old, new)

    return changed


async def _admin_error(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return JSONResponse(
        {"error": "admin", "message": detail, "route": None, "target": None}, status_code=status
    )


def __getattr__(name: str) -> Any:
    if name == "app":
        try:
            app = create_app()
        except ConfigError as refusal:
            # `uvicorn gateway.app:app` on a bad table: the problems, as validate lists
            # them, and exit 1; not a traceback through uvicorn's importer.
            print(refusal, file=sys.stderr)
            raise SystemExit(1) from None
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
