"""Malformed Lambda events: every one gets an answer in its caller's shape, never an
invocation error (which the ALB turns into its own bare 502, and Lambda counts as a fault).

A JSON 400 when a client could have caused it (a header name that is no token, a line
break in a value, a method that is no token, a path without its slash); a 502 `bad_event`,
logged, when only a broken integration could send it (the method missing, maps that are
not maps, null values, a body that is not text or not base64).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.lambda_kit import alb_event, answer_body, http_api_event, lambda_entry
from tests.support.lambda_runner import LambdaProcess

Event = dict[str, Any]


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaProcess]:
    with lambda_entry(tmp_path_factory.mktemp("events")) as process:
        yield process


def alb(**changes: Any) -> Event:
    event = alb_event()
    event.update(changes)
    return event


def alb_single(**changes: Any) -> Event:
    event = alb_event(multi=False)
    event.update(changes)
    return event


def api(**changes: Any) -> Event:
    event = http_api_event()
    event.update(changes)
    return event


def without(event: Event, key: str) -> Event:
    event.pop(key)
    return event


def api_context(**changes: Any) -> Event:
    event = http_api_event()
    event["requestContext"]["http"].update(changes)
    return event


def api_without_http() -> Event:
    event = http_api_event()
    del event["requestContext"]["http"]
    return event


MALFORMED: list[tuple[str, Callable[[], object], int]] = [
    ("alb-no-httpMethod", lambda: without(alb_event(), "httpMethod"), 502),
    ("alb-null-httpMethod", lambda: alb(httpMethod=None), 502),
    ("alb-integer-httpMethod", lambda: alb(httpMethod=7), 502),
    ("alb-method-not-a-token", lambda: alb(httpMethod="GE T"), 400),
    ("alb-null-header-value", lambda: alb_single(headers={"host": "h", "x-a": None}), 502),
    ("alb-null-in-multi-values", lambda: alb(multiValueHeaders={"x-a": [None]}), 502),
    ("alb-multi-value-not-a-list", lambda: alb(multiValueHeaders={"x-a": "v"}), 502),
    ("alb-headers-a-list", lambda: alb_single(headers=["host"]), 502),
    ("alb-header-name-not-a-token", lambda: alb(multiValueHeaders={"x a": ["1"]}), 400),
    ("alb-header-value-crlf", lambda: alb(multiValueHeaders={"x-a": ["1\r\nx-b: 2"]}), 400),
    ("alb-header-lone-surrogate", lambda: alb(multiValueHeaders={"x-a": ["\ud800"]}), 502),
    ("alb-null-query-value", lambda: alb_single(queryStringParameters={"a": None}), 502),
    ("alb-invalid-base64-body", lambda: alb(body="not base64!", isBase64Encoded=True), 502),
    ("alb-integer-body", lambda: alb(body=5000000, isBase64Encoded=False), 502),
    ("alb-list-body", lambda: alb(body=["a"], isBase64Encoded=False), 502),
    ("alb-isBase64Encoded-a-string", lambda: alb(isBase64Encoded="yes"), 502),
    ("alb-integer-path", lambda: alb(path=7), 502),
    ("alb-path-without-slash", lambda: alb(path="echo/x"), 400),
    ("alb-null-requestContext", lambda: alb(requestContext=None), 502),
    ("alb-no-requestContext", lambda: without(alb_event(), "requestContext"), 502),
    ("api-no-http-context", api_without_http, 502),
    ("api-null-requestContext", lambda: api(requestContext=None), 502),
    ("api-null-method", lambda: api_context(method=None), 502),
    ("api-no-rawPath", lambda: without(http_api_event(), "rawPath"), 502),
    ("api-headers-a-string", lambda: api(headers="host: h"), 502),
    ("api-cookies-not-a-list", lambda: api(cookies="a=1"), 502),
    ("api-integer-query", lambda: api(rawQueryString=1), 502),
    ("event-empty", dict, 502),
    ("event-a-list", lambda: [1, 2], 502),
    ("event-a-string", lambda: "GET /", 502),
]


@pytest.mark.parametrize(
    ("make", "status"),
    [(make, status) for _, make, status in MALFORMED],
    ids=[name for name, _, _ in MALFORMED],
)
def test_a_malformed_event_gets_a_json_answer(
    entry: LambdaProcess, make: Callable[[], object], status: int
) -> None:
    # GIVEN a malformed event
    event = make()
    # WHEN the handler is invoked with it
    found = entry.call(event)  # type: ignore[arg-type]
    # THEN it answered (no invocation error) with the JSON error for who is at fault
    assert "ok" in found, found
    answer = found["ok"]
    assert answer["statusCode"] == status
    expected = "bad_request" if status == 400 else "bad_event"
    assert json.loads(answer_body(answer))["error"] == expected


TOLERATED: list[tuple[str, Callable[[], Event]]] = [
    ("non-numeric-x-forwarded-port", lambda: alb_single(headers={"x-forwarded-port": "eighty"})),
    ("odd-x-forwarded-proto", lambda: alb_single(headers={"x-forwarded-proto": "gopher"})),
    ("null-headers", lambda: alb(multiValueHeaders=None)),
    ("null-query", lambda: alb_single(queryStringParameters=None)),
    ("null-body", lambda: alb(body=None)),
    ("empty-path", lambda: alb(path="")),
    ("null-elb", lambda: alb(requestContext={"elb": None})),
    ("api-no-source-ip", lambda: api_context(sourceIp=None)),
]


@pytest.mark.parametrize(
    "make", [make for _, make in TOLERATED], ids=[name for name, _ in TOLERATED]
)
def test_an_odd_but_harmless_event_is_served(
    entry: LambdaProcess, make: Callable[[], Event]
) -> None:
    # GIVEN an event with an odd value the gateway can do without
    # WHEN the handler is invoked with it
    answer = entry.invoke(make())
    # THEN the request reached the upstream
    assert answer["statusCode"] == 200


def test_an_integer_body_is_not_turned_into_zero_bytes(entry: LambdaProcess) -> None:
    # GIVEN an event whose body is the number 5000000 (once a 5 MB zero-filled body)
    event = alb(body=5000000, isBase64Encoded=False, path="/echo/upload", httpMethod="POST")
    # WHEN the handler is invoked
    answer = entry.invoke(event)
    # THEN nothing was forwarded: the event is refused as broken
    assert answer["statusCode"] == 502
    assert b"body_base64" not in answer_body(answer)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
BASES = {
    "alb-multi": alb_event(),
    "alb-single": alb_event(multi=False),
    "http-api": http_api_event(),
}
KEYS = [
    "httpMethod",
    "path",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "body",
    "isBase64Encoded",
    "requestContext",
    "rawPath",
    "rawQueryString",
    "cookies",
    "version",
]


def shape_of(answer: dict[str, Any]) -> set[str]:
    return {"headers", "multiValueHeaders"} & answer.keys()


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    base=st.sampled_from(sorted(BASES)),
    changes=st.dictionaries(st.sampled_from(KEYS), JSON, min_size=1, max_size=3),
)
def test_fuzzed_events_always_get_an_answer(
    entry: LambdaProcess, base: str, changes: dict[str, Any]
) -> None:
    # GIVEN a valid event with one to three fields replaced by arbitrary JSON
    event = copy.deepcopy(BASES[base])
    event.update(changes)
    # WHEN the handler is invoked with it
    found = entry.call(event)
    # THEN it answered with a status and exactly one header map
    assert "ok" in found, found
    answer = found["ok"]
    assert 200 <= answer["statusCode"] <= 599
    assert len(shape_of(answer)) == 1
    assert isinstance(answer["body"], str)
