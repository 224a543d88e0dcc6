"""Method spelling cannot skip a method-restricted protected route (issue 10, item 4).

The method matched is the method forwarded, byte for byte, or the request is refused: a
lower-case spelling is refused with 400 `bad_method` (an upstream client may upper-case it);
a method-override header that would take another route is refused; HEAD on a GET-only route
is that route's, auth and all. Replayed byte-exact under both uvicorn parsers and through the
Lambda handler in a fresh interpreter.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from tests.support.lambda_runner import lambda_process
from tests.support.rawhttp import RawResponse, build, request
from tests.support.servers import serve_in_thread, write_config

KEY = "s3cret-admin-key"
TABLE = """
targets:
  stub: {{url: "{upstream}"}}
routes:
  - name: manage-write
    path: /echo/manage
    methods: [POST]
    auth: {{api_keys: {{header: x-api-key, keys: ["sha256:{digest}"]}}}}
    target: stub
  - name: manage-read
    path: /echo/manage
    methods: [GET]
    auth: {{api_keys: {{header: x-api-key, keys: ["sha256:{digest}"]}}}}
    target: stub
  - name: public
    path: /
    target: stub
"""

# (method as sent, extra headers, status the gateway must answer without a key)
PROBES = [
    pytest.param("post", [], 400, id="lower-case-post"),
    pytest.param("Post", [], 400, id="mixed-case-post"),
    pytest.param("PUT", [("X-HTTP-Method-Override", "POST")], 400, id="override-to-post"),
    pytest.param("PUT", [("X-HTTP-Method", "POST")], 400, id="x-http-method"),
    pytest.param("PUT", [("X-Method-Override", "POST")], 400, id="x-method-override"),
    pytest.param("PUT", [("X-HTTP-Method-Override", "post")], 400, id="override-lower-case"),
    pytest.param("HEAD", [], 401, id="head-on-get-route"),
]


def table(tmp_path: Path, upstream: str) -> str:
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    return write_config(tmp_path, TABLE.format(upstream=upstream, digest=digest))


@pytest.fixture(scope="module", params=["h11", "httptools"])
def gateway(
    request: pytest.FixtureRequest, legacy_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    path = table(tmp_path_factory.mktemp("methods"), legacy_url)
    with serve_in_thread(create_app(path), http=request.param) as url:
        yield url


def send(url: str, method: str, headers: list[tuple[str, str]]) -> RawResponse:
    raw = build(method, "/echo/manage", [("Host", "gateway"), *headers, ("Content-Length", "0")])
    return request(url, raw, head=method.upper() == "HEAD")


@pytest.mark.parametrize(("method", "headers", "status"), PROBES)
def test_no_spelling_reaches_the_public_route(
    gateway: str, method: str, headers: list[tuple[str, str]], status: int
) -> None:
    # GIVEN /echo/manage protected for POST and GET, and a public catch-all
    # WHEN a request without a key spells its method otherwise
    answer = send(gateway, method, headers)

    # THEN it is refused (or challenged like its route), never served by the public route
    assert answer.status == status, answer
    assert answer.header("x-gateway-route") != b"public"
    if status == 400 and answer.header("content-type") == b"application/json":
        # (httptools refuses a lower-case method itself, with a plain-text 400)
        assert json.loads(answer.body)["error"] == "bad_method"


def test_upper_case_post_with_the_key_is_forwarded_as_sent(gateway: str) -> None:
    # GIVEN the same table
    # WHEN POST carries the key
    answer = send(gateway, "POST", [("x-api-key", KEY)])

    # THEN the protected route forwards POST
    assert answer.status == 200, answer
    assert answer.header("x-gateway-route") == b"manage-write"
    assert json.loads(answer.body)["method"] == "POST"


def test_an_override_taking_the_same_route_is_forwarded(gateway: str) -> None:
    # GIVEN a public path, where every method takes the same route
    raw = build(
        "POST",
        "/echo/open",
        [("Host", "gateway"), ("X-HTTP-Method-Override", "DELETE"), ("Content-Length", "0")],
    )

    # WHEN a POST overrides itself to DELETE
    answer = request(gateway, raw)

    # THEN nothing changes route, so it is forwarded as sent
    assert answer.status == 200, answer
    assert answer.header("x-gateway-route") == b"public"


def alb_event(method: str, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:x"}},
        "httpMethod": method,
        "path": "/echo/manage",
        "multiValueQueryStringParameters": {},
        "multiValueHeaders": {"host": ["gateway"], **{k: [v] for k, v in headers.items()}},
        "body": "",
        "isBase64Encoded": False,
    }


@pytest.fixture(scope="module")
def lambda_gateway(legacy_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = table(tmp_path_factory.mktemp("methods-lambda"), legacy_url)
    with lambda_process(path) as process:
        yield process


@pytest.mark.parametrize(("method", "headers", "status"), PROBES)
def test_no_spelling_reaches_the_public_route_on_lambda(
    lambda_gateway: Any, method: str, headers: list[tuple[str, str]], status: int
) -> None:
    # GIVEN the table behind the Lambda handler
    # WHEN an ALB event spells its method otherwise, without a key
    answer = lambda_gateway.invoke(alb_event(method, dict(headers)))

    # THEN it is refused (or challenged like its route), never served by the public route
    assert answer["statusCode"] == status, answer
    routes = answer.get("multiValueHeaders", {}).get("x-gateway-route", [])
    assert "public" not in routes
