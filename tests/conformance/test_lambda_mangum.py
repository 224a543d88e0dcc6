"""Mangum's own ALB and HTTP API handler expectations (vendor/mangum, MIT), run through the
gateway's Lambda entry in a fresh interpreter.

Request side: Mangum's events (its `get_mock_aws_alb_event`, ported below, or the complete
events of its HTTP API tests) go through the gateway to an echo upstream, which must see
what Mangum's expected ASGI scope holds. Answer side: an upstream answers what Mangum's
test app answers (`/mangum/<table>/<case>`, so the event's path names the case where
Mangum's says `/test`), and the handler's answer is compared with Mangum's expected one.
Every difference is a documented deviation, or the test fails.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from mangum.handlers import ALB as MangumALB
from mangum.handlers import HTTPGateway
from mangum.types import LambdaConfig, LambdaContext, Response

from gateway.alb.events import ALBEvent, HttpApiEvent
from tests.conformance.deviations import require_documented
from tests.conformance.lambda_replay import answer_shape, differences, sent
from tests.support.lambda_kit import echoed, lambda_entry
from tests.support.lambda_runner import LambdaProcess

VENDOR = Path(__file__).parent / "vendor" / "mangum"
ALB: dict[str, Any] = json.loads((VENDOR / "alb.json").read_text())
HTTP_API: dict[str, Any] = json.loads((VENDOR / "http_gateway.json").read_text())
# What the gateway adds to every answer: its own two headers, and the upstream server's
# framing (Mangum's test app talks ASGI to the adapter directly, with no Content-Length).
ADDED_HEADERS = {"x-gateway-route", "x-gateway-target", "content-length"}
CONTEXT = cast(LambdaContext, None)
CONFIG: LambdaConfig = {
    "api_gateway_base_path": "/",
    "text_mime_types": ["text/", "application/json"],
    "exclude_headers": [],
}


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaProcess]:
    with lambda_entry(tmp_path_factory.mktemp("mangum")) as process:
        yield process


def mangum_alb_event(case: dict[str, Any], path: str | None = None) -> dict[str, Any]:
    """Mangum's `get_mock_aws_alb_event` (tests/handlers/test_alb.py), ported."""
    headers = case.get("headers") or ALB["default_headers"]
    query = case.get("query_parameters") or {}
    event: dict[str, Any] = {
        "requestContext": {
            "elb": {
                "targetGroupArn": (
                    "arn:aws:elasticloadbalancing:us-east-2:123456789012:"
                    "targetgroup/lambda-279XGJDqGZ5rsrHC2Fjr/49e9d65c45c6791a"
                )
            }
        },
        "httpMethod": case["method"],
        "path": case.get("path", "/test") if path is None else path,
        "body": case.get("req_body"),
        "isBase64Encoded": case.get("body_base64_encoded", False),
    }
    if case["multi_value_headers"]:
        event["multiValueQueryStringParameters"] = query
        event["multiValueHeaders"] = headers
    else:
        event["queryStringParameters"] = {k: (v[-1] if v else []) for k, v in query.items()}
        event["headers"] = {k: (v[-1] if v else []) for k, v in headers.items()}
    return event


def check_scope(event: dict[str, Any], answer: dict[str, Any], case: dict[str, Any]) -> None:
    expected = case["expected_scope"]
    answer_shape(event, answer)
    received = echoed(answer)
    for deviation in differences(sent(event), received):
        require_documented(deviation, f"{case['id']}: forwarding headers")
    assert received["raw_path"] == expected["path"]
    assert received["method"] == expected["method"]
    body = base64.b64decode(case["scope_body_base64"] or "")
    assert base64.b64decode(received["body_base64"]) == body
    if received["query"] != expected["query_string"]:
        require_documented(
            "alb-query-forwarded-as-sent",
            f"{case['id']}: {received['query']!r}, Mangum {expected['query_string']!r}",
        )
    got = received["headers"]
    for name, value in expected.get("headers", []):
        if name not in {"host", "x-forwarded-proto", "connection"}:
            assert [name, value] in got, (name, value)
    chain = [value for name, value in got if name == "x-forwarded-for"]
    assert chain[-1].split(", ")[-1] == expected["client"]
    assert [value for name, value in got if name == "x-forwarded-proto"] == [expected["scheme"]]


@pytest.mark.parametrize(
    "case", ALB["scope_cases"], ids=[case["id"] for case in ALB["scope_cases"]]
)
def test_alb_events_reach_the_upstream_as_mangum_expects(
    entry: LambdaProcess, case: dict[str, Any]
) -> None:
    # GIVEN Mangum's ALB event for this case
    event = mangum_alb_event(case)
    # WHEN the gateway serves it in front of the echo upstream
    answer = entry.invoke(event)
    # THEN the upstream sees Mangum's expected scope, or a documented deviation
    check_scope(event, answer, case)


@pytest.mark.parametrize(
    "case", HTTP_API["scope_cases"], ids=[case["id"] for case in HTTP_API["scope_cases"]]
)
def test_http_api_events_reach_the_upstream_as_mangum_expects(
    entry: LambdaProcess, case: dict[str, Any]
) -> None:
    # GIVEN Mangum's HTTP API (2.0) event for this case
    event = case["event"]
    # WHEN the gateway serves it in front of the echo upstream
    answer = entry.invoke(event)
    # THEN the upstream sees Mangum's expected scope
    check_scope(event, answer, case)


def compare_answer(answer: dict[str, Any], expected: dict[str, Any], case_id: str) -> None:
    """Mangum's expected answer, key by key; every difference documented or failing."""
    for key in answer.keys() - expected.keys():
        if key == "statusDescription":
            require_documented("alb-status-description", f"{case_id}: {answer[key]!r}")
        else:
            pytest.fail(f"{case_id}: unexpected key {key!r}")
    assert answer["statusCode"] == expected["statusCode"]
    mode = "multiValueHeaders" if "multiValueHeaders" in expected else "headers"
    ours, theirs = dict(answer[mode]), dict(expected[mode])
    if (answer["body"], answer["isBase64Encoded"]) != (
        expected["body"],
        expected["isBase64Encoded"],
    ):
        assert "content-type" not in ours
        assert theirs.get("content-type") == "application/json"
        require_documented("http-api-untyped-answer", f"{case_id}: {answer['body']!r}")
        theirs.pop("content-type")
    for name, value in theirs.items():
        assert ours.pop(name, None) == value, (case_id, name)
    if ours:
        assert ours.keys() <= ADDED_HEADERS, ours
        require_documented("lambda-answer-gateway-headers", f"{case_id}: {sorted(ours)}")


@pytest.mark.parametrize(
    "case", ALB["response_cases"], ids=[case["id"] for case in ALB["response_cases"]]
)
def test_alb_answers_are_what_mangum_returns(entry: LambdaProcess, case: dict[str, Any]) -> None:
    # GIVEN an upstream answering what Mangum's test app answers
    event = mangum_alb_event(case, path=f"/mangum/alb/{case['id']}")
    # WHEN the gateway serves Mangum's event for it
    answer = entry.invoke(event)
    # THEN the handler returns Mangum's expected answer, or a documented deviation
    compare_answer(answer, case["expected"], case["id"])


@pytest.mark.parametrize(
    "case",
    HTTP_API["response_cases"],
    ids=[case["id"] for case in HTTP_API["response_cases"]],
)
def test_http_api_answers_are_what_mangum_returns(
    entry: LambdaProcess, case: dict[str, Any]
) -> None:
    # GIVEN an upstream answering what Mangum's test app answers
    event = copy.deepcopy(HTTP_API["event_builder_defaults"])
    event["rawPath"] = f"/mangum/http_gateway/{case['id']}"
    event["requestContext"]["http"]["method"] = case["method"]
    # WHEN the gateway serves Mangum's event for it
    answer = entry.invoke(event)
    # THEN the handler returns Mangum's expected answer, or a documented deviation
    compare_answer(answer, case["expected"], case["id"])


# Beyond Mangum's tables: its adapters themselves (the installed mangum) as the reference,
# on what its tests never send. Pure: scope and answer mapping, no upstream.


def test_non_latin1_header_bytes_differ_from_mangum_as_documented() -> None:
    # GIVEN an ALB event with a latin-1 header value and one beyond latin-1
    headers = {"host": ["h"], "x-latin": ["caf\u00e9"], "x-wide": ["\u65e5"]}
    event = mangum_alb_event({"method": "GET", "multi_value_headers": True, "headers": headers})
    # WHEN both adapters read it
    scope = MangumALB(event, CONTEXT, CONFIG).scope
    theirs = dict((bytes(n), bytes(v)) for n, v in scope["headers"])
    ours = dict(ALBEvent(event, None).request()[0]["headers"])
    # THEN beyond latin-1 both send UTF-8, and a latin-1 value differs, as documented
    assert ours[b"x-wide"] == theirs[b"x-wide"] == "\u65e5".encode()
    assert (ours[b"x-latin"], theirs[b"x-latin"]) == (b"caf\xe9", b"caf\xc3\xa9")
    require_documented("lambda-non-latin1-bytes", "x-latin: b'caf\\xe9', Mangum UTF-8")


def test_http_api_routes_on_raw_path_unlike_mangum() -> None:
    # GIVEN an HTTP API event whose rawPath holds %2F, decoded in requestContext.http.path
    event = copy.deepcopy(HTTP_API["event_builder_defaults"])
    event["rawPath"] = "/a%2Fb"
    event["requestContext"]["http"]["path"] = "/a/b"
    # WHEN both adapters read it
    theirs = HTTPGateway(event, CONTEXT, CONFIG).scope
    ours = HttpApiEvent(event, None).request()[0]
    # THEN Mangum routes the decoded path; the gateway keeps the raw one (then refuses it)
    assert theirs["path"] == "/a/b"
    assert ours["raw_path"] == b"/a%2Fb"
    require_documented("http-api-raw-path", "rawPath /a%2Fb, Mangum /a/b")


def test_single_value_repeated_headers_differ_from_mangum_as_documented() -> None:
    # GIVEN an answer with two Set-Cookie and two Vary, for a single-value ALB event
    event = mangum_alb_event({"method": "GET", "multi_value_headers": False})
    headers = [(b"set-cookie", b"a=1"), (b"vary", b"Accept"), (b"set-cookie", b"b=2")]
    headers.append((b"vary", b"Origin"))
    response: Response = {"status": 200, "headers": [[n, v] for n, v in headers], "body": b""}
    # WHEN both adapters map it
    theirs = MangumALB(event, CONTEXT, CONFIG)(response)["headers"]
    ours = ALBEvent(event, None).answer(200, headers, b"")["headers"]
    # THEN cookies are kept alike; Vary is joined where Mangum recases it
    cookies = {name: value for name, value in theirs.items() if name.lower() == "set-cookie"}
    assert {name: ours[name] for name in cookies} == cookies
    assert (theirs["vary"], theirs["Vary"]) == ("Accept", "Origin")
    assert ours["vary"] == "Accept, Origin"
    require_documented("alb-single-value-repeated-header", "vary: 'Accept, Origin'")
