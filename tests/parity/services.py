"""Simulated services and the loop the corridor will run, so the engine is judged end to end
without sockets (the loopback runs come with the wiring)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from gateway.parity.compare import Answer
from gateway.parity.recorder import Pair, Recorder
from gateway.parity.spec import ShadowSpec, should_sample_noise

Service = Callable[[int, random.Random], Answer]
JSON = ((b"content-type", b"application/json"),)
LINE = "GET /api/orders/7"


def order(i: int, rng: random.Random) -> dict[str, object]:
    """An order as both services build it: a timestamp and a random id stamped per answer."""
    stamp = f"2026-12-02T04:{rng.randrange(60):02}:{rng.random() * 60:06.3f}Z"
    return {
        "id": i,
        "status": "open",
        "total": 30 + i,
        "items": [{"sku": "a-1", "price": 10}, {"sku": "b-2", "price": 20}],
        "meta": {"request_id": f"{rng.getrandbits(64):016x}", "generated_at": stamp},
    }


def answer(body: dict[str, object], status: int = 200) -> Answer:
    return Answer(status, JSON, json.dumps(body).encode())


def legacy(i: int, rng: random.Random) -> Answer:
    return answer(order(i, rng))


def drops_status(i: int, rng: random.Random) -> Answer:
    body = order(i, rng)
    del body["status"]
    return answer(body)


def wrong_total_every_tenth(i: int, rng: random.Random) -> Answer:
    body = order(i, rng)
    if i % 10 == 0:
        body["total"] = 0
    return answer(body)


def reversed_items(i: int, rng: random.Random) -> Answer:
    body = order(i, rng)
    body["items"] = list(reversed(body["items"]))  # type: ignore[call-overload]
    return answer(body)


def run(
    recorder: Recorder,
    spec: ShadowSpec,
    candidate: Service,
    requests: int,
    *,
    start: float = 0.0,
    route: str = "orders",
) -> None:
    """What the corridor does per copied request, one request every 100 ms of injected time."""
    rng = random.Random(13)
    for i in range(requests):
        now = start + i * 0.1
        primary = legacy(i, rng)
        recorder.pair(route, spec, Pair(LINE, primary, candidate(i, rng)), now)
        if should_sample_noise(spec, rng.random()):
            recorder.noise(route, spec, primary, legacy(i, rng), now)
