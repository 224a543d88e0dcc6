"""pick(split, sticky_key, rng) -> target name.

Without a key: random by weight. With a key: weighted rendezvous hashing. Each target draws
an exponential "arrival time" -ln(u)/weight from a hash of (key, target), and the earliest
wins. The winner is target i with probability weight_i / sum(weights), exactly; and when one
target's weight only grows (the others shrink), its time only gets earlier and the others'
only later, so no key already on it moves away. A 0% target never arrives.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

Split = Sequence[tuple[str, float]]

_TWO_64 = float(2**64)


def pick(split: Split, sticky_key: str | None = None, rng: random.Random | None = None) -> str:
    if len(split) == 1:
        return split[0][0]
    if sticky_key is None:
        return _random_pick(split, rng)
    return _rendezvous_pick(split, sticky_key)


def _random_pick(split: Split, rng: random.Random | None) -> str:
    total = sum(weight for _, weight in split)
    point = (rng.random() if rng is not None else random.random()) * total
    chosen = split[0][0]
    for name, weight in split:
        if weight <= 0:
            continue
        chosen = name
        if point < weight:
            return name
        point -= weight
    return chosen


def _rendezvous_pick(split: Split, key: str) -> str:
    best_name = ""
    best_time = math.inf
    for name, weight in split:
        if weight <= 0:
            continue
        arrival = -math.log(_unit(key, name)) / weight
        if arrival < best_time:
            best_name, best_time = name, arrival
    return best_name


def _unit(key: str, target: str) -> float:
    """A uniform float in (0, 1] from (key, target), stable across processes and versions."""
    digest = hashlib.blake2b(f"{target}\x00{key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 1) / _TWO_64
