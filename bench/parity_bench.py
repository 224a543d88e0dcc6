"""CPU µs per answer comparison and per count, against `json.loads` of the same body.

Two pairs of order answers as the demo serves them: ~2 KB (10 items) and ~100 KB (660 items).
Primary and candidate differ in a timestamp, a request id and one item's price, the common case
of a shadowed route. Timed timeit-style (GC off, this process's CPU time, ~0.1 s batches),
median of rounds:

    loads       json.loads of one body: the reference; comparing must parse two
    compare     compare(primary, candidate, spec): parse both, walk, name the paths
    record      LocalParityStore.record_pair of the pair's three paths
    recorder    Recorder.pair: judge, count and keep examples, what the corridor will call

    .venv/bin/python bench/parity_bench.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable

from gateway.parity.compare import Answer, compare
from gateway.parity.counters import LocalParityStore
from gateway.parity.recorder import Pair, Recorder
from gateway.parity.spec import ShadowSpec

BATCH_S = 0.1
JSON = ((b"content-type", b"application/json"),)
SPEC = ShadowSpec("orders-v2")


def order(items: int, stamp: str, request_id: str, price_shift: int) -> bytes:
    body = {
        "id": 7,
        "status": "open",
        "customer": {"id": 42, "name": "Alice Example", "tier": "gold"},
        "items": [
            {
                "sku": f"sku-{n:05}",
                "name": f"Item number {n}",
                "qty": 1 + n % 3,
                "price": 10 + n + (price_shift if n == items // 2 else 0),
                "tags": ["a", "b"],
                "dimensions": {"w": 10, "h": 20, "d": 5},
                "available": n % 2 == 0,
            }
            for n in range(items)
        ],
        "meta": {"request_id": request_id, "generated_at": stamp},
    }
    return json.dumps(body).encode()


def pair(items: int) -> tuple[Answer, Answer]:
    one = order(items, "2026-12-02T04:00:00.000Z", "aaaa1111", 0)
    two = order(items, "2026-12-02T04:00:00.417Z", "bbbb2222", 1)
    return Answer(200, JSON, one), Answer(200, JSON, two)


def per_call_us(call: Callable[[], object], rounds: int) -> float:
    count = 1
    while True:
        start = time.process_time()
        for _ in range(count):
            call()
        if time.process_time() - start >= BATCH_S / 10:
            break
        count *= 2
    count = max(1, int(count * BATCH_S / max(time.process_time() - start, 1e-9)))
    samples = []
    gc.disable()
    try:
        for _ in range(rounds):
            start = time.process_time()
            for _ in range(count):
                call()
            samples.append((time.process_time() - start) / count * 1e6)
    finally:
        gc.enable()
    return statistics.median(samples)


def measure(items: int, rounds: int) -> dict[str, float]:
    primary, candidate = pair(items)
    paths = {d.path: d.kind for d in compare(primary, candidate, SPEC)}
    store = LocalParityStore()
    recorder = Recorder()
    shadowed = Pair("GET /api/orders/7", primary, candidate)
    return {
        "kb": len(primary.body) / 1024,
        "paths": len(paths),
        "loads": per_call_us(lambda: json.loads(primary.body), rounds),
        "compare": per_call_us(lambda: compare(primary, candidate, SPEC), rounds),
        "record": per_call_us(lambda: store.record_pair("orders", "compared", paths, 1.0), rounds),
        "recorder": per_call_us(lambda: recorder.pair("orders", SPEC, shadowed, 1.0), rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(
        f"{'answer':>9}  {'paths':>5}  {'loads µs':>9}  {'compare µs':>10}  {'ratio':>6}"
        f"  {'record µs':>9}  {'recorder µs':>11}"
    )
    for items in (10, 660):
        m = measure(items, args.rounds)
        print(
            f"{m['kb']:7.1f}KB  {m['paths']:5.0f}  {m['loads']:9.1f}  {m['compare']:10.1f}"
            f"  {m['compare'] / m['loads']:5.1f}x  {m['record']:9.2f}  {m['recorder']:11.1f}"
        )


if __name__ == "__main__":
    main()
