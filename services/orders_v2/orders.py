"""Orders: the same JSON shape as the monolith's, from this service's own store."""

import threading
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

SERVED_BY = "orders-v2"

OrderStatus = Literal["pending", "paid", "shipped", "cancelled"]


class OrderItem(BaseModel):
    product_id: int = Field(ge=1)
    quantity: int = Field(ge=1)
    unit_price_cents: int = Field(ge=0)


class NewOrder(BaseModel):
    user_id: int = Field(ge=1)
    items: list[OrderItem] = Field(min_length=1)


class Order(BaseModel):
    id: int
    user_id: int
    status: OrderStatus
    items: list[OrderItem]
    total_cents: int
    created_at: str


def _total(items: list[OrderItem]) -> int:
    return sum(item.quantity * item.unit_price_cents for item in items)


def seed_orders() -> list[Order]:
    """The monolith's seed orders, as if migrated; shadow comparisons rely on them."""
    seeds: list[tuple[int, OrderStatus, list[OrderItem]]] = [
        (1, "shipped", [OrderItem(product_id=1, quantity=1, unit_price_cents=8900)]),
        (
            2,
            "paid",
            [
                OrderItem(product_id=2, quantity=2, unit_price_cents=2500),
                OrderItem(product_id=4, quantity=3, unit_price_cents=990),
            ],
        ),
        (1, "pending", [OrderItem(product_id=3, quantity=1, unit_price_cents=27900)]),
    ]
    return [
        Order(
            id=order_id,
            user_id=user_id,
            status=status,
            items=items,
            total_cents=_total(items),
            created_at=f"2024-03-0{order_id}T09:30:00+00:00",
        )
        for order_id, (user_id, status, items) in enumerate(seeds, start=1)
    ]


class OrderStore:
    def __init__(self, orders: list[Order] | None = None) -> None:
        self._lock = threading.Lock()
        self._orders = {order.id: order for order in (orders if orders is not None else [])}

    def orders(self) -> list[Order]:
        with self._lock:
            return list(self._orders.values())

    def get(self, order_id: int) -> Order | None:
        with self._lock:
            return self._orders.get(order_id)

    def create(self, new: NewOrder) -> Order:
        with self._lock:
            order = Order(
                id=max(self._orders, default=0) + 1,
                user_id=new.user_id,
                status="pending",
                items=new.items,
                total_cents=_total(new.items),
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            self._orders[order.id] = order
            return order


class OrderNotFound(Exception):
    def __init__(self, order_id: int) -> None:
        super().__init__(f"order {order_id} not found")


async def render_not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"error": "not_found", "detail": str(exc), "served_by": SERVED_BY}, status_code=404
    )


def orders_router(store: OrderStore) -> APIRouter:
    router = APIRouter()

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
            raise OrderNotFound(order_id)
        return {**order.model_dump(), "served_by": SERVED_BY}

    return router
