from fastapi import FastAPI

from legacy_stub import echo, harness
from legacy_stub.data import OrderStore, seed_orders
from legacy_stub.middleware import ServedBy
from legacy_stub.resources import SERVED_BY, install_resources
from legacy_stub.tracing import add_tracing


def create_app(store: OrderStore | None = None) -> FastAPI:
    """A fresh monolith; each call owns its own order store."""
    app = FastAPI(title="legacy monolith (stub)")
    install_resources(app, store if store is not None else OrderStore(seed_orders()))
    app.include_router(echo.router)
    app.include_router(harness.router)
    app.add_middleware(ServedBy, name=SERVED_BY)
    add_tracing(app, service="legacy-stub")
    return app


app = create_app()
