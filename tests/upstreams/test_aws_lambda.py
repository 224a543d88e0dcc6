"""Lambda targets end to end: client -> gateway -> real boto3 -> Invoke API stub, on loopback."""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.alb.target import TARGET_GROUP_ARN
from gateway.app import create_app
from gateway.upstreams import aws_lambda
from tests.support.gateways import GatewayFactory
from tests.support.invoke_stub import InvokeStub, fake_aws, running_stub
from tests.support.servers import free_port, serve_in_thread, write_config

ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders"
OK = {"statusCode": 200, "multiValueHeaders": {"content-type": ["text/plain"]}, "body": "ok"}


def table(endpoint: str | None, function: str = "orders", timeout: str = "5s") -> str:
    endpoint_key = f', endpoint_url: "{endpoint}"' if endpoint else ""
    # The breaker is off: these tests provoke one fault after another on a shared gateway,
    # and each must show its own mapping, not an open circuit.
    return f"""
targets:
  orders-fn:
    {{lambda: "{function}", region: us-east-1, timeout: {timeout}, breaker: off{endpoint_key}}}
routes:
  - name: orders-preview
    path: /v2/orders
    rewrite: /api/orders
    target: orders-fn
  - name: orders
    path: /api/orders
    target: orders-fn
"""


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert response.headers["x-gateway-target"] == "orders-fn"
    assert body["target"] == "orders-fn"
    return body


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Test credentials only, and boto3 clients made for this test alone (then closed)."""
    fake_aws(monkeypatch, tmp_path)
    clients: dict[Any, Any] = {}
    monkeypatch.setattr(aws_lambda, "_clients", clients)
    yield
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def shared_stub() -> Iterator[tuple[InvokeStub, str]]:
    with running_stub() as running:
        yield running


@pytest.fixture(scope="module")
def shared_gateway(
    shared_stub: tuple[InvokeStub, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    path = write_config(tmp_path_factory.mktemp("lambda"), table(shared_stub[1]))
    with serve_in_thread(create_app(path)) as url:
        yield url


@pytest.fixture
def stub(shared_stub: tuple[InvokeStub, str]) -> tuple[InvokeStub, str]:
    """The stub and its endpoint, knowing no function and having recorded nothing."""
    shared_stub[0].reset()
    return shared_stub


@pytest.fixture
def invoke_stub(stub: tuple[InvokeStub, str]) -> InvokeStub:
    return stub[0]


@pytest.fixture
def gateway(shared_gateway: str, stub: tuple[InvokeStub, str]) -> str:
    """A gateway whose `orders-fn` target invokes `orders` on the (reset) stub."""
    return shared_gateway


def test_the_function_receives_what_an_alb_would_send(
    gateway: str, invoke_stub: InvokeStub
) -> None:
    # GIVEN a function that answers, and a request with a raw query and repeated headers
    invoke_stub.answer("orders", OK)
    url = "/v2/orders/%41b?x=%41&x=2&y=a%20b+c&flag"
    headers = [("x-tag", "one"), ("x-tag", "two"), ("content-type", "application/json")]
    # WHEN it goes through the route that rewrites /v2/orders to /api/orders
    with httpx.Client(base_url=gateway) as client:
        response = client.post(url, headers=headers, content=b'{"sku": "caf\xc3\xa9"}')
    # THEN the function got one ALB event in multi-value mode, nothing decoded
    assert response.status_code == 200, response.text
    [invocation] = invoke_stub.invocations
    assert (invocation.function, invocation.qualifier) == ("orders", None)
    event = invocation.event
    assert event["requestContext"] == {"elb": {"targetGroupArn": TARGET_GROUP_ARN}}
    assert event["httpMethod"] == "POST"
    assert event["path"] == "/api/orders/Ab"  # the path in normal form, %41 is A
    assert event["multiValueQueryStringParameters"] == {
        "x": ["%41", "2"],
        "y": ["a%20b+c"],
        "flag": [""],
    }
    assert event["multiValueHeaders"]["x-tag"] == ["one", "two"]
    assert event["multiValueHeaders"]["content-type"] == ["application/json"]
    assert event["multiValueHeaders"]["x-forwarded-for"] == ["127.0.0.1"]
    assert event["multiValueHeaders"]["host"] == [gateway.removeprefix("http://")]
    assert (event["body"], event["isBase64Encoded"]) == ('{"sku": "café"}', False)
    assert "headers" not in event
    assert "queryStringParameters" not in event


@pytest.mark.parametrize(
    ("headers", "body", "as_text"),
    [
        ({"content-type": "text/plain; charset=utf-8"}, "crème brûlée".encode(), True),
        ({"content-type": "application/octet-stream"}, bytes(range(256)), False),
        (
            {"content-type": "application/json", "content-encoding": "gzip"},
            gzip.compress(b"{}"),
            False,
        ),
        ({"content-type": "text/plain"}, b"\xff\xfe not utf-8", False),
        ({"content-type": "application/octet-stream"}, b"", True),
    ],
    ids=["utf8-text", "binary", "gzipped-json", "text-not-utf8", "empty"],
)
def test_a_body_goes_as_text_or_base64(
    gateway: str, invoke_stub: InvokeStub, headers: dict[str, str], body: bytes, as_text: bool
) -> None:
    # GIVEN a body of some type
    invoke_stub.answer("orders", OK)
    # WHEN it is PUT through the gateway
    with httpx.Client(base_url=gateway) as client:
        assert client.put("/api/orders/1", headers=headers, content=body).status_code == 200
    # THEN text arrives as text, anything else base64 with isBase64Encoded set
    event = invoke_stub.invocations[0].event
    assert event["isBase64Encoded"] is (not as_text)
    sent = event["body"].encode() if as_text else base64.b64decode(event["body"])
    assert sent == body


@pytest.mark.parametrize(
    "answer",
    [
        {"multiValueHeaders": {"Content-Type": ["text/plain"], "X-Order": ["1", "2"]}},
        {"headers": {"Content-Type": "text/plain", "X-Order": "1, 2"}},
        {
            "multiValueHeaders": {"content-type": ["text/plain"], "x-order": ["1", "2"]},
            "headers": {"Content-Type": "text/html", "x-single": "yes"},
        },
    ],
    ids=["multi-value", "single-value", "both-multi-wins"],
)
def test_the_answer_maps_back_in_either_header_shape(
    gateway: str, invoke_stub: InvokeStub, answer: dict[str, Any]
) -> None:
    # GIVEN a function answering with multiValueHeaders, headers, or both
    invoke_stub.answer("orders", {"statusCode": 201, "body": "made", **answer})
    # WHEN a request reaches it
    with httpx.Client(base_url=gateway) as client:
        response = client.post("/api/orders")
    # THEN status, headers and body come back, a name in both maps taken from multi-value
    assert response.status_code == 201
    assert response.text == "made"
    assert response.headers.get_list("content-type") == ["text/plain"]
    assert ", ".join(response.headers.get_list("x-order")) == "1, 2"
    assert response.headers.get("x-single") == answer.get("headers", {}).get("x-single")
    assert response.headers["x-gateway-route"] == "orders"


def test_cookies_binary_bodies_and_lengths_survive_the_way_back(
    gateway: str, invoke_stub: InvokeStub
) -> None:
    # GIVEN a binary answer (base64 in MIME lines) with two cookies, a wrong length and
    # hop-by-hop headers
    content = bytes(range(256)) * 4
    invoke_stub.answer(
        "orders",
        {
            "statusCode": 200,
            "multiValueHeaders": {
                "set-cookie": ["a=1; Path=/", "b=2; HttpOnly"],
                "content-type": ["application/octet-stream"],
                "content-length": ["3"],
                "connection": ["close"],
                "x-gateway-target": ["spoofed"],
            },
            "body": base64.encodebytes(content).decode(),
            "isBase64Encoded": True,
        },
    )
    # WHEN a request reaches it
    with httpx.Client(base_url=gateway) as client:
        response = client.get("/api/orders/export")
    # THEN both cookies, the decoded bytes and their real length reach the client
    assert response.status_code == 200
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert response.content == content
    assert response.headers["content-length"] == str(len(content))
    assert response.headers.get_list("x-gateway-target") == ["orders-fn"]
    assert "connection" not in response.headers


def test_a_function_error_is_a_502_naming_the_error_and_the_function(
    gateway: str, invoke_stub: InvokeStub
) -> None:
    # GIVEN a function that raises ValueError
    invoke_stub.fail("orders", "secret detail")
    # WHEN a request reaches it
    response = httpx.get(f"{gateway}/api/orders")
    # THEN the gateway answers 502 function_error, naming both, without the function's message
    assert response.status_code == 502
    error = error_of(response)
    assert error["error"] == "function_error"
    assert "ValueError" in error["message"]
    assert "'orders'" in error["message"]
    assert "secret detail" not in response.text


@pytest.mark.parametrize(
    ("lambda_says", "client_sees"),
    [(7, "7"), (None, "1")],
    ids=["lambda-retry-after", "default-retry-after"],
)
def test_throttling_is_a_503_with_retry_after_and_no_retry(
    gateway: str, invoke_stub: InvokeStub, lambda_says: int | None, client_sees: str
) -> None:
    # GIVEN a function Lambda throttles (429 TooManyRequestsException)
    invoke_stub.throttle("orders", retry_after=lambda_says)
    # WHEN a request reaches it
    response = httpx.get(f"{gateway}/api/orders")
    # THEN the client is told to come back later, and boto3 did not hammer Lambda meanwhile
    assert response.status_code == 503
    assert error_of(response)["error"] == "upstream_throttled"
    assert response.headers["retry-after"] == client_sees
    assert len(invoke_stub.invocations) == 1


@pytest.mark.parametrize(
    ("content_type", "size"),
    [
        ("application/octet-stream", 6 * 1024 * 1024 + 1),
        ("application/octet-stream", 5 * 1024 * 1024),
    ],
    ids=["body-over-6mb", "base64-event-over-6mb"],
)
def test_a_payload_over_6mb_is_a_413_and_never_invoked(
    gateway: str, invoke_stub: InvokeStub, content_type: str, size: int
) -> None:
    # GIVEN a body whose event would not fit Lambda's 6 MB invoke payload
    invoke_stub.answer("orders", OK)
    # WHEN it is POSTed
    response = httpx.post(
        f"{gateway}/api/orders", content=b"\x00" * size, headers={"content-type": content_type}
    )
    # THEN the gateway refuses it itself
    assert response.status_code == 413
    assert error_of(response)["error"] == "payload_too_large"
    assert invoke_stub.invocations == []


def test_a_function_slower_than_the_timeout_is_a_504(
    start_gateway: GatewayFactory, stub: tuple[InvokeStub, str]
) -> None:
    # GIVEN a target with a 500ms timeout, and a function that takes a second
    invoke_stub, endpoint = stub
    invoke_stub.answer("orders", OK, delay=1.0)
    gateway = start_gateway(table(endpoint, timeout="500ms"))
    # WHEN a request reaches it
    started = time.monotonic()
    response = httpx.get(f"{gateway}/api/orders")
    # THEN the gateway gives up at the timeout
    assert response.status_code == 504
    assert error_of(response)["error"] == "upstream_timeout"
    assert "0.5s" in response.json()["message"]
    assert time.monotonic() - started < 0.95


def test_an_unknown_function_is_a_502_saying_it_does_not_exist(gateway: str) -> None:
    # GIVEN a stub that knows no function at all
    # WHEN a request reaches the target
    response = httpx.get(f"{gateway}/api/orders")
    # THEN the gateway says which function is missing
    assert response.status_code == 502, response.text
    error = error_of(response)
    assert error["error"] == "upstream_unavailable"
    assert "'orders' does not exist" in error["message"]


def test_missing_credentials_is_a_502_saying_so(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    start_gateway: GatewayFactory,
    stub: tuple[InvokeStub, str],
) -> None:
    # GIVEN no AWS credentials anywhere (variables, files, instance metadata)
    invoke_stub, endpoint = stub
    invoke_stub.answer("orders", OK)
    fake_aws(monkeypatch, tmp_path, credentials=False)
    gateway = start_gateway(table(endpoint))
    # WHEN a request reaches the target
    response = httpx.get(f"{gateway}/api/orders")
    # THEN the gateway says credentials are missing, and nothing was sent unsigned
    assert response.status_code == 502
    assert "no AWS credentials" in error_of(response)["message"]
    assert invoke_stub.invocations == []


def test_an_unreachable_endpoint_is_a_502_saying_so(start_gateway: GatewayFactory) -> None:
    # GIVEN an endpoint nothing listens on
    gateway = start_gateway(table(f"http://127.0.0.1:{free_port()}"))
    # WHEN a request reaches the target
    response = httpx.get(f"{gateway}/api/orders")
    # THEN the gateway says it cannot reach Lambda
    assert response.status_code == 502
    assert "cannot reach the Lambda endpoint" in error_of(response)["message"]


def test_aws_endpoint_url_lambda_redirects_invokes_without_endpoint_url(
    monkeypatch: pytest.MonkeyPatch, start_gateway: GatewayFactory, stub: tuple[InvokeStub, str]
) -> None:
    # GIVEN no endpoint_url in the table, but boto3's own variable pointing at the stub
    invoke_stub, endpoint = stub
    invoke_stub.answer("orders", OK)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", endpoint)
    gateway = start_gateway(table(None))
    # WHEN a request reaches the target
    response = httpx.get(f"{gateway}/api/orders")
    # THEN the invoke went to the stub
    assert response.status_code == 200, response.text
    assert len(invoke_stub.invocations) == 1


@pytest.mark.parametrize(
    ("function", "path_name", "qualifier"),
    [
        ("orders", "orders", None),
        ("orders:live", "orders", "live"),
        ("orders:$LATEST", "orders", "$LATEST"),
        (ARN, ARN, None),
        (f"{ARN}:live", f"{ARN}:live", None),
    ],
    ids=["name", "name-alias", "name-latest", "arn", "arn-alias"],
)
def test_each_function_form_reaches_lambda_as_boto3_sends_it(
    start_gateway: GatewayFactory,
    stub: tuple[InvokeStub, str],
    function: str,
    path_name: str,
    qualifier: str | None,
) -> None:
    # GIVEN a target naming its function as a name, name:alias or ARN
    invoke_stub, endpoint = stub
    invoke_stub.answer("orders", OK)
    gateway = start_gateway(table(endpoint, function=function))
    # WHEN a request reaches it
    assert httpx.get(f"{gateway}/api/orders").status_code == 200
    # THEN an alias goes as ?Qualifier=, an ARN whole as the FunctionName
    [invocation] = invoke_stub.invocations
    assert (invocation.function, invocation.qualifier) == (path_name, qualifier)


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        (None, "not JSON"),
        (["a", "list"], "did not answer an ALB response object"),
        ({"body": "no status"}, "without a valid statusCode"),
        ({"statusCode": 200, "body": "%%%", "isBase64Encoded": True}, "not base64"),
        ({"statusCode": 200, "headers": {"x-name": "\u2603"}}, "not latin-1"),
    ],
    ids=["not-json", "not-an-object", "no-status", "bad-base64", "non-latin1-header"],
)
def test_an_answer_that_is_not_an_alb_response_is_a_502(
    gateway: str, invoke_stub: InvokeStub, answer: Any, complaint: str
) -> None:
    # GIVEN a function answering something an ALB could not turn into HTTP
    if answer is None:
        invoke_stub.not_json("orders")
    else:
        invoke_stub.answer("orders", answer)
    # WHEN a request reaches it
    response = httpx.get(f"{gateway}/api/orders")
    # THEN the gateway says what was wrong with it
    assert response.status_code == 502
    assert complaint in error_of(response)["message"]
    assert json.loads(response.text)["error"] == "upstream_unavailable"
