"""The /_gateway admin API: health and the route table in use, behind its gate."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Protocol, runtime_checkable

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse, JSONResponse

from gateway.admission.admin_guard import HEALTH_PATH
from gateway.asgi import ASGIApp, Receive, Scope, Send
from gateway.cli.explain import parse_header, report
from gateway.config.model import HttpTarget, LambdaTarget, Target
from gateway.config.units import format_duration, parse_duration
from gateway.errors import GatewayError, send_error
from gateway.fleet.concurrency import FleetConcurrencyLimit
from gateway.fleet.store import StateUnavailable
from gateway.migration.dashboard import RATE_WINDOW, LedgerCache, dashboard
from gateway.migration.page import PAGE
from gateway.migration.progress import metric_lines
from gateway.parity.report import parity_report
from gateway.reload import Reloader
from gateway.rollouts.metrics import parse_prometheus
from gateway.runtime import Runtime
from gateway.shadowing import Shadowing
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.state_metrics import render_state


@runtime_checkable
class Loading(Protocol):
    """A parity store read from elsewhere before a report (`fleet.parity.RedisParityStore`)."""

    async def load(self, route: str, window: float, now: float) -> object: ...


RECENT_LIMIT = 3600.0


def describe_target(target: Target) -> dict[str, Any]:
    match target:
        case HttpTarget():
            return {"kind": "http", "url": target.url, "timeout": format_duration(target.timeout)}
        case LambdaTarget():
            return {
                "kind": "lambda",
                "function": target.function,
                "timeout": format_duration(target.timeout),
                "region": target.region,
                "endpoint_url": target.endpoint_url,
            }


def describe(runtime: Runtime) -> dict[str, Any]:
    config = runtime.config
    return {
        "source": config.source,
        "version": config.version,
        "loaded_at": runtime.loaded_at,
        "targets": {name: describe_target(t) for name, t in config.targets.items()},
        "routes": [
            {
                "name": route.name,
                "path": route.path,
                "methods": sorted(route.methods) if route.methods is not None else None,
                "headers": dict(route.headers),
                "split": dict(route.split),
                "sticky": str(route.sticky) if route.sticky else None,
                "rewrite": route.rewrite,
            }
            for route in config.routes
        ],
    }


async def target_limits(runtime: Runtime) -> dict[str, dict[str, Any]]:
    """Per target: whether its limits hold fleet-wide or per process, and what is in flight
    (the fleet's count, read from Redis now; this process's for a local limit)."""
    found: dict[str, dict[str, Any]] = {}
    for name, guard in runtime.guards.items():
        limit = guard.limit
        state = "fleet" if guard.fleet_wide else "local"
        entry: dict[str, Any] = {"state": state, "max_concurrency": None, "in_flight": None}
        if isinstance(limit, FleetConcurrencyLimit):
            entry["max_concurrency"] = limit.limit
            try:
                entry["in_flight"] = await limit.count_in_flight()
            except StateUnavailable:
                entry["state"] = "local (shared state unavailable)"
                entry["in_flight"] = limit.in_flight
        elif limit is not None:
            entry["max_concurrency"] = limit.limit
            entry["in_flight"] = limit.in_flight
        found[name] = entry
    return found


def admin_router(
    runtime: Callable[[], Runtime],
    metrics: Metrics,
    reloader: Reloader | None = None,
    shadowing: Shadowing | None = None,
) -> APIRouter:
    router = APIRouter(prefix="/_gateway")
    shadows = shadowing or Shadowing()

    @router.get("/metrics")
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        store = runtime().store
        if store is not None and store.observer is None:  # else in the shared files' sum
            body += render_state(store.snapshot()).encode()
        # the migration's gauges come from the table in use and the counters just rendered
        counters = parse_prometheus(body.decode("utf-8"))
        body += metric_lines(runtime().config, counters).encode("utf-8")
        return Response(body + shadows.metrics_text(runtime()), media_type=content_type)

    _parity_routes(router, runtime, shadows)

    @router.get("/recent")
    async def recent(window: str = "5m") -> Any:
        """Requests, 5xx, p50 and p99 per route and target over the last `window` (<= 1h)."""
        try:
            seconds = parse_duration(window)
        except ValueError as exc:
            return JSONResponse({"error": "bad_window", "message": str(exc)}, status_code=400)
        if not 0 < seconds <= RECENT_LIMIT:
            message = "a window from 1s to 1h"
            return JSONResponse({"error": "bad_window", "message": message}, status_code=400)
        return {"window": format_duration(seconds), "rows": metrics.recent.summary(seconds)}

    ledger = LedgerCache()

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers={"cache-control": "no-store"})

    @router.get("/dashboard.json")
    async def dashboard_json() -> dict[str, Any]:
        """The page's numbers: routes, stages, weights, the last minute, rollouts, ledger."""
        config = runtime().config
        now = time.time()
        # The buckets are whole minutes: the last full one plus the one under way, so a rate
        # read just after a minute turns is not a near-empty minute's.
        recent = metrics.recent.summary(2 * RATE_WINDOW)
        span = RATE_WINDOW + now % RATE_WINDOW
        specs = {r.name: r.shadow.compare for r in config.routes if r.shadow}
        store = shadows.recorder.store
        if isinstance(store, Loading):  # fleet-wide counts: read Redis first, as /parity does
            try:
                for name, spec in specs.items():
                    await store.load(name, spec.window, now)
            except GatewayError:
                specs = {}  # the page shows no parity rather than a stale one

        def parity(route: str) -> dict[str, Any] | None:
            if route not in specs:
                return None
            found: list[dict[str, Any]] = parity_report(shadows.recorder, specs, now, route)[
                "routes"
            ]
            return found[0] if found else None

        return dashboard(config, recent, ledger.entries(config.source), parity, span)

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/explain")
    async def explain(
        method: str, path: str, header: Annotated[list[str] | None, Query()] = None
    ) -> Any:
        """What the table in use does with METHOD PATH and `header=Name: value` (repeated)."""
        try:
            headers = [parse_header(text) for text in header or []]
        except ValueError as exc:
            return JSONResponse({"error": "bad_header", "message": str(exc)}, status_code=400)
        return report(runtime().table, method, path, headers)

    @router.get("/routes")
    async def routes() -> dict[str, Any]:
        current = runtime()
        described = describe(current)
        for name, limits in (await target_limits(current)).items():
            described["targets"][name]["limits"] = limits
        described["last_reload_error"] = reloader.last_error if reloader is not None else None
        return described

    return router


class AdminGate:
    """ASGI: lets a /_gateway request through to `app` only when the runtime's admin guard
    admits its client; health, and lifespan events, always pass."""

    def __init__(self, app: ASGIApp, runtime: Callable[[], Runtime]) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] == HEALTH_PATH:
            await self.app(scope, receive, send)
            return
        runtime = self.runtime()
        try:
            await runtime.admin.check(scope, runtime.client_chain(scope)[0])
        except GatewayError as error:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await send_error(send, error)
            return
        await self.app(scope, receive, send)


def _parity_routes(router: APIRouter, runtime: Callable[[], Runtime], shadows: Shadowing) -> None:
    """`/_gateway/parity` and its reset: the shadow comparisons of the table in use."""

    @router.get("/parity")
    async def parity(route: str | None = None, window: str | None = None) -> Any:
        """Per route with a `shadow:`: the parity score, the counts, the differing paths."""
        specs = {r.name: r.shadow.compare for r in runtime().config.routes if r.shadow}
        if route is not None and route not in specs:
            message = f"route {route!r} has no shadow block (with one: {', '.join(sorted(specs))})"
            return JSONResponse({"error": "no_shadow", "message": message}, status_code=404)
        try:
            seconds = None if window is None else parse_duration(window)
        except ValueError as exc:
            return JSONResponse({"error": "bad_window", "message": str(exc)}, status_code=400)
        now = time.time()
        store = shadows.recorder.store
        try:
            if isinstance(store, Loading):  # fleet-wide (RedisParityStore): read Redis first
                for name in [route] if route else sorted(specs):
                    await store.load(name, seconds or specs[name].window, now)
        except GatewayError as exc:
            return JSONResponse({"error": exc.code, "message": str(exc)}, status_code=503)
        return parity_report(shadows.recorder, specs, now, route, seconds)

    @router.post("/parity/reset")
    async def parity_reset(route: str) -> Any:
        """Forget a route's parity counts and examples (after a fix, say)."""
        if not any(r.name == route and r.shadow for r in runtime().config.routes):
            message = f"route {route!r} has no shadow block"
            return JSONResponse({"error": "no_shadow", "message": message}, status_code=404)
        shadows.recorder.reset(route)
        return {"reset": route}
