"""pick(split, sticky_key, rng): weighted random, and sticky keys that never flap."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

import pytest

from gateway.splitting import Split, pick

DRAWS = 10_000
KEYS = [f"user-{n}" for n in range(DRAWS)]
TOLERANCE_POINTS = 2.0

SPLITS = [
    pytest.param((("legacy", 90.0), ("canary", 10.0)), id="90-10"),
    pytest.param((("legacy", 50.0), ("canary", 50.0)), id="50-50"),
    pytest.param((("legacy", 99.5), ("canary", 0.5)), id="99.5-0.5"),
    pytest.param((("a", 33.3), ("b", 33.3), ("c", 33.4)), id="thirds"),
]


def shares(picks: Counter[str]) -> dict[str, float]:
    total = sum(picks.values())
    return {name: 100.0 * count / total for name, count in picks.items()}


def assert_near_weights(picks: Counter[str], split: Split) -> None:
    got = shares(picks)
    assert set(got) <= {name for name, _ in split}
    for name, weight in split:
        assert abs(got.get(name, 0.0) - weight) <= TOLERANCE_POINTS, (name, got)


def sticky_assignment(split: Split) -> dict[str, str]:
    return {key: pick(split, key) for key in KEYS}


@pytest.mark.parametrize("split", SPLITS)
def test_random_picks_follow_the_weights(split: Split) -> None:
    # GIVEN a seeded random source
    rng = random.Random(20240611)

    # WHEN 10,000 requests without a sticky key are split
    picks = Counter(pick(split, None, rng) for _ in range(DRAWS))

    # THEN each target's share is within 2 points of its weight
    assert_near_weights(picks, split)


ZERO_SPLITS = [
    pytest.param((("legacy", 100.0), ("canary", 0.0)), id="zero-last"),
    pytest.param((("canary", 0.0), ("legacy", 100.0)), id="zero-first"),
    pytest.param((("legacy", 60.0), ("canary", 0.0), ("new", 40.0)), id="zero-middle"),
]


@pytest.mark.parametrize("split", ZERO_SPLITS)
def test_zero_weight_target_never_gets_a_random_pick(split: Split) -> None:
    # GIVEN a split with a 0% target and a seeded random source
    rng = random.Random(7)

    # WHEN 10,000 requests are split at random
    picks = Counter(pick(split, None, rng) for _ in range(DRAWS))

    # THEN the 0% target gets none of them
    assert picks["canary"] == 0
    assert sum(picks.values()) == DRAWS


@pytest.mark.parametrize("split", ZERO_SPLITS)
def test_zero_weight_target_never_gets_a_sticky_key(split: Split) -> None:
    # GIVEN a split with a 0% target
    # WHEN 10,000 sticky keys are assigned
    picks = Counter(sticky_assignment(split).values())

    # THEN the 0% target gets none of them
    assert picks["canary"] == 0
    assert sum(picks.values()) == DRAWS


@pytest.mark.parametrize("split", SPLITS)
def test_sticky_key_always_gets_the_same_target(split: Split) -> None:
    # GIVEN the targets once assigned to 1,000 keys
    first = {key: pick(split, key) for key in KEYS[:1000]}

    # WHEN the same keys are picked again, even with a random source that would differ
    rng = random.Random(1)
    again = {key: pick(split, key, rng) for key in KEYS[:1000]}

    # THEN every key gets the same target, and more than one target is in use
    assert again == first
    assert len(set(first.values())) > 1


@pytest.mark.parametrize("split", SPLITS)
def test_sticky_keys_follow_the_weights(split: Split) -> None:
    # GIVEN 10,000 distinct sticky keys
    # WHEN each is assigned a target
    picks = Counter(sticky_assignment(split).values())

    # THEN each target's share is within 2 points of its weight
    assert_near_weights(picks, split)


def moved_off(before: dict[str, str], after: dict[str, str], target: str) -> list[str]:
    return [key for key, name in before.items() if name == target and after[key] != target]


def test_raising_the_canary_keeps_every_canary_key() -> None:
    # GIVEN keys assigned at 10% canary
    before = sticky_assignment((("legacy", 90.0), ("canary", 10.0)))

    # WHEN the canary is raised to 50%
    after = sticky_assignment((("legacy", 50.0), ("canary", 50.0)))

    # THEN no key on the canary moves back, and the canary gained keys
    assert moved_off(before, after, "canary") == []
    assert Counter(after.values())["canary"] > Counter(before.values())["canary"]


def test_growing_one_of_three_targets_only_moves_keys_onto_it() -> None:
    # GIVEN keys on a 3-way split
    before = sticky_assignment((("new", 20.0), ("legacy", 40.0), ("other", 40.0)))

    # WHEN "new" grows to 60% and the others shrink in proportion (20% each)
    after = sticky_assignment((("new", 60.0), ("legacy", 20.0), ("other", 20.0)))

    # THEN keys on "new" stay, and any key that moved went to "new", not sideways
    assert moved_off(before, after, "new") == []
    moved = {(before[key], after[key]) for key in KEYS if before[key] != after[key]}
    assert moved == {("legacy", "new"), ("other", "new")}


def test_canary_steps_in_a_row_never_take_a_key_back() -> None:
    # GIVEN the canary raised step by step 1 -> 5 -> 25 -> 50 -> 100
    steps = [1.0, 5.0, 25.0, 50.0, 100.0]
    assignments = [sticky_assignment((("legacy", 100 - w), ("canary", w))) for w in steps]

    # WHEN each step is compared with the next
    taken_back = [moved_off(before, after, "canary") for before, after in pairwise(assignments)]

    # THEN no step moves a key off the canary, and the last step has every key on it
    assert taken_back == [[], [], [], []]
    assert set(assignments[-1].values()) == {"canary"}


@pytest.mark.parametrize(
    "sticky_key",
    [pytest.param(None, id="random"), pytest.param("user-1", id="sticky")],
)
def test_single_target_split_returns_it(sticky_key: str | None) -> None:
    # GIVEN a split with one target
    split = (("legacy", 100.0),)

    # WHEN a request is split
    name = pick(split, sticky_key, random.Random(3))

    # THEN it goes to that target
    assert name == "legacy"
