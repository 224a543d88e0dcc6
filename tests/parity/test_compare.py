"""One pair compared: every kind of difference, ignores, other bodies, size and depth."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.parity.compare import Answer, Difference, compare, judge
from gateway.parity.spec import CompareSpec, ShadowSpec

JSON = ((b"content-type", b"application/json"),)
SPEC = ShadowSpec("v2")


def _json(body: object, status: int = 200) -> Answer:
    return Answer(status, JSON, json.dumps(body).encode())


def _found(one: object, two: object, spec: ShadowSpec = SPEC) -> list[tuple[str, str]]:
    return sorted((d.path, d.kind) for d in compare(_json(one), _json(two), spec))


@pytest.mark.parametrize(
    ("one", "two", "expected"),
    [
        ({"a": 1}, {"a": 2}, [("body.a", "value")]),
        ({"a": 1}, {"a": "1"}, [("body.a", "type")]),
        ({"a": True}, {"a": 1}, [("body.a", "type")]),
        ({"a": None}, {"a": 0}, [("body.a", "type")]),
        ({"a": 1, "b": 2}, {"a": 1}, [("body.b", "missing")]),
        ({"a": 1}, {"a": 1, "b": 2}, [("body.b", "extra")]),
        ({"l": [1, 2, 3]}, {"l": [3, 1, 2]}, [("body.l", "order")]),
        ({"l": [1, 2, 3]}, {"l": [1, 2]}, [("body.l", "size")]),
        ({"i": [{"p": 1}, {"p": 2}]}, {"i": [{"p": 1}, {"p": 5}]}, [("body.i[].p", "value")]),
        ({"i": [{"p": 1, "q": 1}]}, {"i": [{"q": 1}]}, [("body.i[].p", "missing")]),
        ({"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 2}}}, [("body.a.b.c", "value")]),
        ({"odd.key": 1}, {"odd.key": 2}, [('body["odd.key"]', "value")]),
        ([1, 2], [1, 3], [("body[]", "value")]),
        ({"a": {"x": True}}, {"a": {"x": 1}}, [("body.a.x", "type")]),
        ([{"x": False}, {"x": 2}], [{"x": 0}, {"x": 2}], [("body[].x", "type")]),
        ({"l": [True, 1]}, {"l": [1, True]}, [("body.l", "order")]),
        ({"a": 1.0}, {"a": 1}, []),
        ({"a": [1, 2], "b": 1}, {"b": 1, "a": [1, 2]}, []),
    ],
    ids=[
        "value",
        "type",
        "bool-is-not-number",
        "null-is-not-zero",
        "missing",
        "extra",
        "order",
        "size",
        "element-value",
        "element-missing",
        "nested",
        "quoted-key",
        "root-array",
        "bool-under-equal-object",
        "bool-under-equal-array",
        "bool-and-number-swapped",
        "equal-numbers",
        "key-order-irrelevant",
    ],
)
def test_each_kind_of_difference_is_named_at_its_path(
    one: object, two: object, expected: list[tuple[str, str]]
) -> None:
    # GIVEN two JSON answers WHEN compared THEN the differences are exactly these
    assert _found(one, two) == expected


def test_a_difference_carries_both_values() -> None:
    # GIVEN a changed price in the second item WHEN compared
    [found] = compare(_json({"i": [{"p": 1}, {"p": 2}]}), _json({"i": [{"p": 1}, {"p": 9}]}), SPEC)
    # THEN both values are shown compactly
    assert found == Difference("body.i[].p", "value", "2", "9")


def test_many_elements_differing_at_one_path_count_once() -> None:
    # GIVEN every element's price changed WHEN compared THEN one difference under the array path
    one = {"i": [{"p": n} for n in range(100)]}
    two = {"i": [{"p": n + 1} for n in range(100)]}
    assert _found(one, two) == [("body.i[].p", "value")]


@pytest.mark.parametrize(
    ("ignore", "expected"),
    [
        (("body.meta",), ["body.items[].price", "body.total"]),
        (("body.meta.request_id",), ["body.items[].price", "body.meta.at", "body.total"]),
        (("body.items[].price",), ["body.meta.at", "body.meta.request_id", "body.total"]),
        (("body.items",), ["body.meta.at", "body.meta.request_id", "body.total"]),
        (("body",), []),
        (
            ("body.me",),
            ["body.items[].price", "body.meta.at", "body.meta.request_id", "body.total"],
        ),
    ],
    ids=[
        "prefix-object",
        "one-field",
        "element-field",
        "prefix-array",
        "whole-body",
        "no-partial-key",
    ],
)
def test_ignored_paths_never_produce_differences(
    ignore: tuple[str, ...], expected: list[str]
) -> None:
    # GIVEN answers that differ in meta, the total and an item price
    one = {"meta": {"request_id": "a", "at": 1}, "total": 1, "items": [{"price": 1}]}
    two = {"meta": {"request_id": "b", "at": 2}, "total": 2, "items": [{"price": 2}]}
    spec = ShadowSpec("v2", compare=CompareSpec(ignore=ignore))
    # WHEN compared THEN nothing at or below an ignored path is reported
    assert [path for path, _ in _found(one, two, spec)] == expected


def test_a_missing_field_under_an_ignored_prefix_is_ignored() -> None:
    # GIVEN body.meta ignored WHEN meta loses a field THEN nothing is reported
    spec = ShadowSpec("v2", compare=CompareSpec(ignore=("body.meta",)))
    assert _found({"meta": {"a": 1}}, {"meta": {}}, spec) == []


@pytest.mark.parametrize(
    ("one", "two", "expected"),
    [
        (b"hello", b"hello", []),
        (b"hello", b"hello!", [("body", "body", "5 bytes", "6 bytes")]),
        (b"{not json", b"{not json!", [("body", "body", "9 bytes", "10 bytes")]),
    ],
    ids=["equal-text", "other-text", "broken-json"],
)
def test_other_bodies_are_equal_bytes_or_one_body_difference(
    one: bytes, two: bytes, expected: list[tuple[str, str, str, str]]
) -> None:
    # GIVEN plain text answers WHEN compared THEN equal bytes or one `body` difference with sizes
    text = ((b"content-type", b"text/plain"),)
    found = compare(Answer(200, text, one), Answer(200, text, two), SPEC)
    assert [(d.path, d.kind, d.primary, d.candidate) for d in found] == expected


def test_nan_equals_nan() -> None:
    # GIVEN two answers with the same NaN and another field changed WHEN compared
    one = Answer(200, JSON, b'{"x": NaN, "a": 1}')
    two = Answer(200, JSON, b'{"x": NaN, "a": 2}')
    # THEN only the changed field differs
    assert [d.path for d in compare(one, two, SPEC)] == ["body.a"]


def test_json_is_sniffed_without_a_content_type() -> None:
    # GIVEN JSON bodies served without a content type WHEN compared THEN fields are named
    found = compare(Answer(200, (), b' {"a": 1}'), Answer(200, (), b'{"a":2}'), SPEC)
    assert [(d.path, d.kind) for d in found] == [("body.a", "value")]


def test_status_and_listed_headers_are_compared() -> None:
    # GIVEN other status, other location, a missing content type and an unlisted header
    spec = ShadowSpec("v2", compare=CompareSpec(headers=("content-type", "location")))
    one = Answer(200, ((b"Content-Type", b"text/plain"), (b"Location", b"/a"), (b"x", b"1")), b"")
    two = Answer(201, ((b"location", b"/b"), (b"x", b"2")), b"")
    # WHEN compared
    found = {d.path: (d.kind, d.primary, d.candidate) for d in compare(one, two, spec)}
    # THEN status and the listed headers differ, the unlisted one is not looked at
    assert found == {
        "status": ("value", "200", "201"),
        "header.content-type": ("missing", "text/plain", ""),
        "header.location": ("value", "/a", "/b"),
    }


def test_no_answer_is_one_difference_and_its_own_outcome() -> None:
    # GIVEN a candidate that failed WHEN judged THEN the pair is no_answer with one difference
    result = judge(_json({"a": 1}), None, SPEC)
    assert result.outcome == "no_answer"
    assert [(d.path, d.kind) for d in result.differences] == [("no_answer", "no_answer")]


def test_answers_over_max_body_are_skipped_not_compared() -> None:
    # GIVEN max_body 1KB and a 2KB answer WHEN judged THEN skipped, with no differences
    spec = ShadowSpec("v2", max_body=1000)
    result = judge(_json({"a": "x" * 2000}), _json({"a": "y"}), spec)
    assert (result.outcome, result.differences) == ("skipped", ())


def test_deep_json_is_walked_without_recursion() -> None:
    # GIVEN documents nested 900 objects deep that differ at the bottom
    one: object = 1
    two: object = 2
    for _ in range(900):
        one, two = {"k": one}, {"k": two}
    # WHEN compared THEN the one path is named, however deep
    [found] = compare(_json(one), _json(two), SPEC)
    assert found.path == "body" + ".k" * 900
    assert found.kind == "value"


def test_json_too_deep_to_parse_is_compared_as_bytes() -> None:
    # GIVEN bodies nested deeper than the parser goes WHEN compared THEN one body difference
    deep = b"[" * 100_000 + b"]" * 100_000
    found = compare(Answer(200, JSON, deep), Answer(200, JSON, deep + b" "), SPEC)
    assert [(d.path, d.kind) for d in found] == [("body", "body")]


def test_big_answers_keep_their_examples_short() -> None:
    # GIVEN a 100 KB value that changed WHEN compared THEN each side is cut to a few KB
    [found] = compare(_json({"a": "x" * 100_000}), _json({"a": "y" * 100_000}), SPEC)
    assert len(found.primary) < 3000 and len(found.candidate) < 3000


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=30,
)
PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=200)


@PROPERTY
@given(JSON_VALUES)
def test_an_answer_never_differs_from_itself(value: object) -> None:
    # GIVEN any JSON answer WHEN compared with itself THEN there is no difference
    assert compare(_json(value), _json(value), SPEC) == []


@PROPERTY
@given(JSON_VALUES, JSON_VALUES)
def test_compare_never_raises_and_names_paths_in_the_grammar(one: object, two: object) -> None:
    # GIVEN any two JSON answers WHEN compared THEN it answers, each path under body
    for found in compare(_json(one), _json(two), SPEC):
        assert found.path == "body" or found.path.startswith(("body.", "body["))


@PROPERTY
@given(st.binary(max_size=64), st.binary(max_size=64), st.sampled_from([b"application/json", b""]))
def test_compare_never_raises_on_arbitrary_bytes(one: bytes, two: bytes, kind: bytes) -> None:
    # GIVEN any bodies, claimed as JSON or not WHEN compared THEN it answers, equal or `body`
    headers = ((b"content-type", kind),)
    found = compare(Answer(200, headers, one), Answer(200, headers, two), SPEC)
    assert one != two or found == []
