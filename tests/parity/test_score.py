"""Noise cancellation and the parity score, driven by simulated services over injected time."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.parity.counters import MAX_PATHS, MAX_SETS, OTHER, LocalParityStore
from gateway.parity.noise import expected_noise, is_real
from gateway.parity.recorder import Recorder
from gateway.parity.report import parity_report
from gateway.parity.score import score
from gateway.parity.spec import CompareSpec, ShadowSpec
from tests.parity.services import (
    Service,
    drops_status,
    legacy,
    reversed_items,
    run,
    wrong_total_every_tenth,
)

SPEC = ShadowSpec("v2")
REQUESTS = 2000
END = REQUESTS * 0.1


def _report(recorder: Recorder, spec: ShadowSpec = SPEC) -> dict[str, Any]:
    [entry] = parity_report(recorder, {"orders": spec.compare}, END)["routes"]
    return dict(entry)


def _verdicts(entry: dict[str, Any]) -> dict[str, str]:
    return {row["path"]: row["verdict"] for row in entry["paths"]}


def test_two_identical_services_converge_to_full_parity_with_noise_on() -> None:
    # GIVEN two copies of the legacy, each stamping a timestamp and a random request id
    recorder = Recorder()
    # WHEN 2000 requests are copied, 5% of them also sent to the legacy twice
    run(recorder, SPEC, legacy, REQUESTS)
    entry = _report(recorder)
    # THEN parity is 100% and the stamped fields are listed as noise
    assert entry["score"] == 100.0
    assert _verdicts(entry) == {"body.meta.request_id": "noise", "body.meta.generated_at": "noise"}
    assert entry["noise_samples"] > 50


def test_without_noise_samples_the_stamps_count_as_differences() -> None:
    # GIVEN the same services with compare.noise: 0
    spec = ShadowSpec("v2", compare=CompareSpec(noise=0.0))
    recorder = Recorder()
    # WHEN copied THEN every pair differs: the cancellation is what made the score 100
    run(recorder, spec, legacy, REQUESTS)
    assert _report(recorder, spec)["score"] == 0.0


@pytest.mark.parametrize(
    ("candidate", "expected_score", "path", "kind"),
    [
        (drops_status, 0.0, "body.status", "missing"),
        (wrong_total_every_tenth, 90.0, "body.total", "value"),
        (reversed_items, 0.0, "body.items", "order"),
    ],
    ids=["drops-a-field", "one-value-in-ten", "reorders-items"],
)
def test_a_divergent_candidate_is_named_by_path_and_kind(
    candidate: Service, expected_score: float, path: str, kind: str
) -> None:
    # GIVEN a candidate that diverges from the legacy, stamps still differing on both
    recorder = Recorder()
    # WHEN 2000 requests are copied
    run(recorder, SPEC, candidate, REQUESTS)
    entry = _report(recorder)
    # THEN parity drops by the share of diverging answers
    assert entry["score"] == pytest.approx(expected_score)
    # AND the worst row names the path and kind, with an example of both sides
    worst = entry["paths"][0]
    assert (worst["path"], worst["kind"], worst["verdict"]) == (path, kind, "real")
    assert worst["example"]["request"] == "GET /api/orders/7"
    assert worst["example"]["primary"] != worst["example"]["candidate"]
    assert _verdicts(entry)["body.meta.request_id"] == "noise"


def test_a_real_difference_hidden_among_noisy_paths_still_counts() -> None:
    # GIVEN pairs that differ in noise only, and one in ten also in a real path
    recorder = Recorder()
    run(recorder, SPEC, wrong_total_every_tenth, REQUESTS)
    # WHEN scored THEN the mismatched pairs are exactly the tenth with the real path
    entry = _report(recorder)
    assert entry["real_mismatched"] == REQUESTS // 10
    assert entry["counts"]["mismatched"] == REQUESTS


@pytest.mark.parametrize(
    ("raw", "noise", "compared", "expected"),
    [
        (100, 100, 1000, False),
        (100, 90, 1000, False),
        (100, 60, 1000, True),
        (1, 0, 10_000, False),
        (4, 0, 10_000, True),
        (0, 5, 1000, False),
    ],
    ids=[
        "equal",
        "within-relative",
        "beyond-both",
        "under-absolute",
        "over-absolute",
        "less-than-noise",
    ],
)
def test_diffys_rule(raw: float, noise: float, compared: int, expected: bool) -> None:
    # GIVEN counts WHEN judged with 20% and 0.03% THEN real only past all three conditions
    assert is_real(raw, noise, compared, 0.20, 0.0003) is expected


def test_noise_is_scaled_from_its_sample_to_the_pairs_compared() -> None:
    # GIVEN a path differing in 5 of 50 noise samples WHEN 1000 pairs were compared
    # THEN the primary alone would have differed in 100 of them
    assert expected_noise(5, 50, 1000) == 100
    assert expected_noise(5, 0, 1000) == 0


def test_no_score_before_min_compared() -> None:
    # GIVEN 49 then 50 clean pairs
    store = LocalParityStore()
    spec = CompareSpec()
    for i in range(49):
        store.record_pair("orders", "compared", {}, float(i))
    # WHEN scored THEN none is given before 50, with the reason
    early = score(store.snapshot("orders", 900, 49).window, spec)
    assert (early.score, early.reason) == (None, "49 of 50 pairs compared")
    store.record_pair("orders", "compared", {}, 49.0)
    assert score(store.snapshot("orders", 900, 50).window, spec).score == 100.0


def test_the_window_forgets_what_the_since_reset_total_keeps() -> None:
    # GIVEN 60 mismatched pairs in the first minute
    store = LocalParityStore()
    for i in range(60):
        store.record_pair("orders", "compared", {"body.a": "value"}, float(i))
    # WHEN read 14 minutes later and 16 minutes later with a 15-minute window
    inside = store.snapshot("orders", 900, 14 * 60)
    outside = store.snapshot("orders", 900, 16 * 60)
    # THEN the window holds them, then not; the total since reset holds them throughout
    assert inside.window.judged == 60
    assert outside.window.judged == 0
    assert outside.total.judged == 60
    # AND a reset forgets the total
    store.reset("orders")
    assert store.snapshot("orders", 900, 16 * 60).total.judged == 0


def test_old_minutes_are_dropped_past_the_retention() -> None:
    # GIVEN a store keeping an hour, fed one pair a minute for three hours
    store = LocalParityStore(retention=3600)
    for minute in range(180):
        store.record_pair("orders", "compared", {}, minute * 60.0)
    # THEN at most an hour of minutes is held
    assert len(store._minutes["orders"]) <= 61


def test_unbounded_paths_are_folded_and_still_counted_as_real() -> None:
    # GIVEN pairs differing at 1000 paths (a map keyed by ids), each path in 5 of 5000 pairs
    store = LocalParityStore()
    for i in range(5000):
        store.record_pair("orders", "compared", {f"body.by_id.{i % 1000}": "value"}, 1.0)
    tally = store.snapshot("orders", 900, 2.0).window
    # THEN the bucket stays bounded, the overflow is one path, and no pair is lost
    assert len(tally.raw) <= MAX_PATHS + 1 and len(tally.pair_sets) <= MAX_SETS + 1
    assert tally.raw[OTHER] == 5000 - 5 * MAX_PATHS
    assert score(tally, CompareSpec()).score == 0.0


def test_a_path_rarer_than_the_absolute_threshold_is_not_real() -> None:
    # GIVEN one pair in 5000 differing at a path the primary never differs in (0.02% < 0.03%)
    store = LocalParityStore()
    for i in range(5000):
        store.record_pair("orders", "compared", {"body.a": "value"} if i == 0 else {}, 1.0)
    # WHEN scored THEN Diffy's absolute threshold keeps it out of the score
    result = score(store.snapshot("orders", 900, 2.0).window, CompareSpec())
    assert result.score == 100.0
    assert [(r.path, r.verdict) for r in result.rows] == [("body.a", "noise")]


def test_no_answer_pairs_count_against_parity() -> None:
    # GIVEN 40 compared clean pairs and 10 without an answer, plus a dropped and a skipped copy
    store = LocalParityStore()
    for i in range(40):
        store.record_pair("orders", "compared", {}, float(i))
    for i in range(10):
        store.record_pair("orders", "no_answer", {"no_answer": "no_answer"}, float(i))
    store.record_pair("orders", "dropped", {}, 1.0)
    store.record_pair("orders", "skipped", {}, 1.0)
    # WHEN scored THEN 10 of the 50 judged pairs are mismatched; dropped and skipped are not judged
    result = score(store.snapshot("orders", 900, 60).window, CompareSpec())
    assert (result.judged, result.mismatched, result.score) == (50, 10, 80.0)


def test_a_path_ignored_after_it_was_counted_stops_counting() -> None:
    # GIVEN pairs counted with a differing body.a, then body.a added to compare.ignore
    store = LocalParityStore()
    for i in range(50):
        store.record_pair("orders", "compared", {"body.a": "value"}, float(i))
    spec = CompareSpec(ignore=("body.a",))
    # WHEN scored THEN the path is shown as ignored and parity is whole
    result = score(store.snapshot("orders", 900, 60).window, spec)
    assert result.score == 100.0
    assert [(r.path, r.verdict) for r in result.rows] == [("body.a", "ignored")]
