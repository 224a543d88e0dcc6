from typing import Any

from fastapi import FastAPI
from mangum import Mangum

from services.orders_v2.faults import FaultInjection, FaultInjector, fault_router
from services.orders_v2.middleware import ServedBy
from services.orders_v2.orders import (
    SERVED_BY,
    OrderNotFound,
    OrderStore,
    orders_router,
    render_not_found,
    seed_orders,
)
from services.orders_v2.tracing import add_tracing


def create_app(injector: FaultInjector | None = None, store: OrderStore | None = None) -> FastAPI:
    """A fresh service; each call owns its own order store and fault settings."""
    injector = injector if injector is not None else FaultInjector()
    store = store if store is not None else OrderStore(seed_orders())
    app = FastAPI(title="orders-v2")
    app.include_router(orders_router(store), prefix="/api")
    app.include_router(fault_router(injector))
    app.add_exception_handler(OrderNotFound, render_not_found)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "served_by": SERVED_BY}

    app.add_middleware(FaultInjection, injector=injector)
    # Added last so it wraps the rest: injected failures carry `x-served-by` too.
    app.add_middleware(ServedBy, name=SERVED_BY)
    add_tracing(app, service="orders-v2")
    return app


app = create_app()
handler = Mangum(app, lifespan="off")
