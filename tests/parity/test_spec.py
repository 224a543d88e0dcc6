"""The shadow block as the issue writes it, its refusals, and which requests are copied."""

from __future__ import annotations

import pytest

from gateway.parity.paths import covered, path_problem
from gateway.parity.spec import (
    CompareSpec,
    ShadowSpec,
    parse_shadow,
    should_copy,
    should_sample_noise,
)

ISSUE_BLOCK = {
    "target": "orders-v2",
    "percent": 25,
    "methods": ["GET", "HEAD"],
    "writes": "never",
    "max_body": "1MB",
    "timeout": "5s",
    "compare": {
        "headers": ["content-type", "location"],
        "ignore": ["body.meta.request_id", "body.items[].updated_at"],
        "noise": "5%",
    },
}


def test_the_issue_block_reads_as_written() -> None:
    # GIVEN the contract's example block
    # WHEN it is parsed
    spec, problems = parse_shadow(ISSUE_BLOCK)
    # THEN every field is as written and the rest are defaults
    assert problems == []
    assert spec == ShadowSpec(
        target="orders-v2",
        percent=0.25,
        methods=("GET", "HEAD"),
        writes="never",
        max_body=1_000_000,
        timeout=5.0,
        compare=CompareSpec(
            headers=("content-type", "location"),
            ignore=("body.meta.request_id", "body.items[].updated_at"),
        ),
    )


def test_a_bare_target_takes_every_default() -> None:
    # GIVEN only a target WHEN parsed
    spec, problems = parse_shadow({"target": "v2"})
    # THEN the defaults of the issue apply
    assert problems == []
    assert spec is not None
    assert (spec.percent, spec.methods, spec.writes) == (1.0, ("GET", "HEAD", "OPTIONS"), "never")
    assert (spec.max_body, spec.timeout) == (1_000_000, 5.0)
    c = spec.compare
    assert (c.headers, c.ignore, c.noise) == (("content-type",), (), 0.05)
    assert (c.relative_threshold, c.absolute_threshold) == (0.20, 0.0003)
    assert (c.window, c.min_compared) == (900.0, 50)


def test_fractions_and_thresholds_are_read() -> None:
    # GIVEN a fractional percent and both thresholds
    block = {
        "target": "v2",
        "percent": 0.5,
        "compare": {
            "relative_threshold": "10%",
            "absolute_threshold": 0.1,
            "window": "5m",
            "min_compared": 10,
            "noise": 0,
        },
    }
    # WHEN parsed
    spec, problems = parse_shadow(block)
    # THEN they are shares of one
    assert problems == [] and spec is not None
    assert spec.percent == pytest.approx(0.005)
    assert spec.compare.relative_threshold == pytest.approx(0.10)
    assert spec.compare.absolute_threshold == pytest.approx(0.001)
    assert (spec.compare.window, spec.compare.min_compared, spec.compare.noise) == (300, 10, 0)


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"target": "v2", "mirror": True}, "shadow.mirror"),
        ({"target": "v2", "compare": {"noize": 5}}, "shadow.compare.noize"),
        ({"target": "v2", "percent": 101}, "shadow.percent"),
        ({"target": "v2", "percent": -1}, "shadow.percent"),
        ({"target": "v2", "percent": "lots"}, "shadow.percent"),
        ({"target": "v2", "percent": True}, "shadow.percent"),
        ({"target": "v2", "writes": "always"}, "shadow.writes"),
        ({"target": "v2", "max_body": "1 parsec"}, "shadow.max_body"),
        ({"target": "v2", "timeout": "0s"}, "shadow.timeout"),
        ({"target": "v2", "methods": "GET"}, "shadow.methods"),
        ({"target": "v2", "compare": {"ignore": ["meta.id"]}}, "shadow.compare.ignore"),
        ({"target": "v2", "compare": {"ignore": ["body.items[0]"]}}, "shadow.compare.ignore"),
        ({"target": "v2", "compare": {"ignore": ["body..a"]}}, "shadow.compare.ignore"),
        ({"target": "v2", "compare": {"min_compared": 0}}, "shadow.compare.min_compared"),
        ({"percent": 10}, "shadow.target"),
    ],
    ids=[
        "unknown-key",
        "unknown-compare-key",
        "percent-over-100",
        "percent-negative",
        "percent-word",
        "percent-bool",
        "writes-unknown",
        "size-unit",
        "zero-timeout",
        "methods-not-list",
        "ignore-no-root",
        "ignore-index",
        "ignore-empty-key",
        "min-compared-zero",
        "no-target",
    ],
)
def test_a_bad_block_is_refused_naming_the_field(block: dict[str, object], field: str) -> None:
    # GIVEN a block with one mistake WHEN parsed
    spec, problems = parse_shadow(block)
    # THEN no spec, and the problem names the field
    assert spec is None
    assert field in [where for where, _ in problems]


@pytest.mark.parametrize(
    "path",
    [
        "status",
        "header.content-type",
        "body",
        "body.a.b",
        "body.items[].price",
        "body[]",
        'body["odd.key"].x',
        "body.a[][].b",
    ],
    ids=[
        "status",
        "header",
        "body",
        "nested",
        "array-element",
        "root-array",
        "quoted-key",
        "nested-arrays",
    ],
)
def test_the_field_path_grammar_accepts(path: str) -> None:
    # GIVEN a path in the grammar WHEN checked THEN no problem
    assert path_problem(path) is None


@pytest.mark.parametrize(
    ("path", "ignored", "expected"),
    [
        ("body.meta.id", ("body.meta",), True),
        ("body.meta[].id", ("body.meta",), True),
        ("body.meta", ("body.meta",), True),
        ("body.metadata", ("body.meta",), False),
        ("body.items[].price", ("body.items[].price",), True),
        ("body.items[].sku", ("body.items[].price",), False),
    ],
    ids=["below", "below-array", "itself", "sibling-prefix", "element-field", "other-field"],
)
def test_ignoring_a_path_covers_what_is_below_it(
    path: str, ignored: tuple[str, ...], expected: bool
) -> None:
    # GIVEN ignored prefixes WHEN a path is checked THEN only it and what is below are covered
    assert covered(path, ignored) is expected


WRITES = ["POST", "PUT", "DELETE", "PATCH"]


def _spec(**changes: object) -> ShadowSpec:
    spec, problems = parse_shadow({"target": "v2", **changes})
    assert spec is not None, problems
    return spec


@pytest.mark.parametrize("method", WRITES, ids=WRITES)
def test_writes_never_are_never_copied(method: str) -> None:
    # GIVEN writes: never, even with the method listed and a key
    spec = _spec(writes="never", methods=["GET", method])
    # WHEN a write arrives THEN it is not copied
    assert not should_copy(spec, method, {"idempotency-key": "k1"}, 0.0)


@pytest.mark.parametrize("method", [*WRITES, "GET"], ids=[*WRITES, "GET"])
def test_a_sandbox_gets_every_method(method: str) -> None:
    # GIVEN writes: sandbox WHEN any method arrives THEN it is copied
    assert should_copy(_spec(writes="sandbox"), method, {}, 0.0)


@pytest.mark.parametrize("method", WRITES, ids=WRITES)
def test_idempotency_key_writes_need_the_header(method: str) -> None:
    # GIVEN writes: idempotency-key
    spec = _spec(writes="idempotency-key")
    # WHEN a write comes with and without the key THEN only the keyed one is copied
    assert should_copy(spec, method, {"idempotency-key": "k1"}, 0.0)
    assert not should_copy(spec, method, {}, 0.0)
    assert not should_copy(spec, method, {"idempotency-key": ""}, 0.0)


def test_reads_follow_the_methods_list() -> None:
    # GIVEN methods: [GET]
    spec = _spec(methods=["get"])
    # WHEN GET and HEAD arrive THEN only GET is copied
    assert should_copy(spec, "GET", {}, 0.0)
    assert not should_copy(spec, "HEAD", {}, 0.0)


def test_the_percent_is_the_share_of_draws_copied() -> None:
    # GIVEN percent: 25
    spec = _spec(percent=25)
    # WHEN 10 000 evenly spread draws are made
    copied = sum(should_copy(spec, "GET", {}, i / 10_000) for i in range(10_000))
    # THEN exactly a quarter are copied, and 0% copies nothing
    assert copied == 2500
    assert not should_copy(_spec(percent=0), "GET", {}, 0.0)


def test_the_noise_share_is_the_share_of_draws_sent_twice() -> None:
    # GIVEN noise: 5% and noise: 0 WHEN 10 000 evenly spread draws are made
    draws = [i / 10_000 for i in range(10_000)]
    # THEN a twentieth are sent to the primary twice, and none when it is off
    assert sum(should_sample_noise(_spec(), d) for d in draws) == 500
    off = _spec(compare={"noise": 0})
    assert not any(should_sample_noise(off, d) for d in draws)
