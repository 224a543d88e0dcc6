"""In-memory resources of the monolith: a few users, products and orders."""

import threading
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

OrderStatus = Literal["pending", "paid", "shipped", "cancelled"]


class User(BaseModel):
    id: int
    name: str
    email: str


class Product(BaseModel):
    id: int
    sku: str
    name: str
    price_cents: int


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


USERS: tuple[User, ...] = (
    User(id=1, name="Ada Lovelace", email="ada@example.com"),
    User(id=2, name="Grace Hopper", email="grace@example.com"),
    User(id=3, name="Edsger Dijkstra", email="edsger@example.com"),
)

PRODUCTS: tuple[Product, ...] = (
    Product(id=1, sku="KB-001", name="Mechanical keyboard", price_cents=8900),
    Product(id=2, sku="MS-002", name="Wireless mouse", price_cents=2500),
    Product(id=3, sku="MN-003", name='27" monitor', price_cents=27900),
    Product(id=4, sku="CB-004", name="USB-C cable", price_cents=990),
)


def _order(order_id: int, user_id: int, status: OrderStatus, items: list[OrderItem]) -> Order:
    return Order(
        id=order_id,
        user_id=user_id,
        status=status,
        items=items,
        total_cents=sum(item.quantity * item.unit_price_cents for item in items),
        created_at=f"2024-03-0{order_id}T09:30:00+00:00",
    )


def seed_orders() -> list[Order]:
    return [
        _order(1, 1, "shipped", [OrderItem(product_id=1, quantity=1, unit_price_cents=8900)]),
        _order(
            2,
            2,
            "paid",
            [
                OrderItem(product_id=2, quantity=2, unit_price_cents=2500),
                OrderItem(product_id=4, quantity=3, unit_price_cents=990),
            ],
        ),
        _order(3, 1, "pending", [OrderItem(product_id=3, quantity=1, unit_price_cents=27900)]),
    ]


class OrderStore:
    """The only mutable resource; a lock keeps ids unique if a threadpool ever writes."""

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
                total_cents=sum(item.quantity * item.unit_price_cents for item in new.items),
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            self._orders[order.id] = order
            return order
