"""A route's new split, in whole thousandths of a percent that sum to 100%.

`shifted` sets one target's share and rescales the others in their proportions; `all_to`
sends everything to one target, the others listed at 0 so the way back is one edit.
"""

from __future__ import annotations

import difflib
import math
from fractions import Fraction

from gateway.config.model import GatewayConfig, Route
from gateway.rollouts.yaml_text import Refused

Split = tuple[tuple[str, float], ...]
Weights = list[tuple[str, int]]  # in thousandths of a percent
SCALE = 1000  # weights keep at most three decimals
WHOLE = 100 * SCALE


def shifted(config: GatewayConfig, route: Route, target: str, share: float) -> Weights:
    """TARGET at SHARE percent; with one other target, it gets the rest; with several, all at
    0%, there is no proportion to keep and the edit is refused."""
    check_target(config, target)
    wanted = thousandths(share)
    others = [(name, Fraction(repr(weight)) * SCALE) for name, weight in route.split]
    others = [(name, weight) for name, weight in others if name != target]
    rest = WHOLE - wanted
    total = sum((weight for _, weight in others), Fraction(0))
    if rest and not others:
        raise Refused(f"{target} is its only target; shift another target in instead")
    if rest and len(others) > 1 and not total:
        names = ", ".join(name for name, _ in others)
        raise Refused(f"{names} all have 0%, so there is no proportion to keep: shift one of them")
    if len(others) == 1:
        shares = {others[0][0]: rest}
    else:
        shares = apportion({name: weight * rest / (total or 1) for name, weight in others}, rest)
    return [(name, wanted if name == target else shares[name]) for name in _names(route, target)]


def all_to(config: GatewayConfig, route: Route, target: str) -> Weights:
    check_target(config, target)
    return [(name, WHOLE if name == target else 0) for name in _names(route, target)]


def _names(route: Route, target: str) -> list[str]:
    return [*route.targets, *([] if target in route.targets else [target])]


def thousandths(share: float) -> int:
    if not math.isfinite(share) or not 0 <= share <= 100:
        raise Refused(f"{share:g}% is not a percentage 0..100")
    exact = Fraction(repr(share)) * SCALE
    if exact.denominator != 1:
        raise Refused(f"{share:g}%: at most three decimals")
    return int(exact)


def apportion(exact: dict[str, Fraction], total: int) -> dict[str, int]:
    """Whole thousandths summing to `total`: the largest remainders round up."""
    shares = {name: math.floor(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: exact[name] - shares[name], reverse=True)
    for name in by_remainder[: total - sum(shares.values())]:
        shares[name] += 1
    return shares


def check_target(config: GatewayConfig, target: str) -> None:
    if target not in config.targets:
        guess = difflib.get_close_matches(target, list(config.targets), n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        raise Refused(f"unknown target {target!r}{hint}; declared: {', '.join(config.targets)}")


def as_split(weights: Weights) -> Split:
    return tuple((target, share / SCALE) for target, share in weights)


def as_values(weights: Weights) -> list[tuple[str, float]]:
    """Whole percents as ints (`25`, not `25.0`), the rest with their decimals."""
    return [
        (name, share // SCALE if share % SCALE == 0 else share / SCALE) for name, share in weights
    ]


def as_weights(split: Split) -> Weights:
    """A split as it is, in thousandths (an edit that keeps the split)."""
    return [(target, round(share * SCALE)) for target, share in split]
