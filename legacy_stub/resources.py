"""The monolith's REST resources: users, products and orders."""

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from legacy_stub.data import PRODUCTS, USERS, NewOrder, OrderStore

SERVED_BY = "legacy"


class NotFound(Exception):
    def __init__(self, resource: str, resource_id: int) -> None:
        super().__init__(f"{resource} {resource_id} not found")
        self.resource = resource
        self.resource_id = resource_id


async def render_not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"error": "not_found", "detail": str(exc), "served_by": SERVED_BY}, status_code=404
    )


def install_resources(app: FastAPI, store: OrderStore) -> None:
    app.include_router(resources_router(store), prefix="/api")
    app.add_exception_handler(NotFound, render_not_found)


def resources_router(store: OrderStore) -> APIRouter:
    router = APIRouter()
    users = {user.id: user for user in USERS}
    products = {product.id: product for product in PRODUCTS}

    @router.get("/users")
    async def list_users() -> dict[str, Any]:
        return {"users": [user.model_dump() for user in USERS], "served_by": SERVED_BY}

    @router.get("/users/{user_id}")
    async def get_user(user_id: int) -> dict[str, Any]:
        if (user := users.get(user_id)) is None:
            raise NotFound("user", user_id)
        return {**user.model_dump(), "served_by": SERVED_BY}

    @router.get("/products")
    async def list_products() -> dict[str, Any]:
        return {
            "products": [product.model_dump() for product in PRODUCTS],
            "served_by": SERVED_BY,
        }

    @router.get("/products/{product_id}")
    async def get_product(product_id: int) -> dict[str, Any]:
        if (product := products.get(product_id)) is None:
            raise NotFound("product", product_id)
        return {**product.model_dump(), "served_by": SERVED_BY}

    @router.get("/orders")
    async def list_orders() -> dict[str, Any]:
        orders = [order.model_dump() for order in store.orders()]
        return {"orders": orders, "count": len(orders), "served_by": SERVED_BY}

    @router.post("/orders", status_code=201)
    async def create_order(new: NewOrder) -> dict[str, Any]:
        return {**store.create(new).model_dump(), "served_by": SERVED_BY}

    @router.get("/orders/{order_id}")
    async def get_order(order_id: int) -> dict[str, Any]:
        if (order := store.get(order_id)) is None:
            raise NotFound("order", order_id)
        return {**order.model_dump(), "served_by": SERVED_BY}

    return router
