"""The local Invoke API: real boto3 and a real gateway calling handlers served on loopback."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from gateway.cli.local_lambda import add_arguments, run
from gateway.local.functions import FunctionSpecError, load_functions
from gateway.local.invoke_api import create_invoke_app
from gateway.upstreams import aws_lambda
from services.orders_v2.faults import DELAY_MS_ENV, FAIL_RATE_ENV
from tests.support.gateways import GatewayFactory
from tests.support.invoke_stub import fake_aws
from tests.support.servers import free_port, serve_in_thread, serve_process

ORDERS = "orders-v2=services.orders_v2.app:handler"
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:whoami"
SERVE = (
    "import argparse, sys\n"
    "from gateway.cli.local_lambda import add_arguments, run\n"
    "parser = argparse.ArgumentParser()\n"
    "add_arguments(parser)\n"
    "sys.exit(run(parser.parse_args()))\n"
)


def explode(event: Any, context: Any) -> Any:
    raise RuntimeError("kaboom")


def whoami(event: Any, context: Any) -> dict[str, Any]:
    return {
        "event": event,
        "function_name": context.function_name,
        "invoked_function_arn": context.invoked_function_arn,
        "aws_request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def unmarshalable(event: Any, context: Any) -> Any:
    return {"when": object()}


def sleepy(event: Any, context: Any) -> Any:
    time.sleep(0.6)
    return "late"


def alb_event(path: str) -> dict[str, Any]:
    return {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:local"}},
        "httpMethod": "GET",
        "path": path,
        "multiValueQueryStringParameters": {},
        "multiValueHeaders": {"accept": ["application/json"]},
        "body": "",
        "isBase64Encoded": False,
    }


def lambda_client(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}),
    )


def invoke(client: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    result = client.invoke(**kwargs)
    return result, json.loads(result["Payload"].read())


@pytest.fixture(autouse=True)
def no_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAIL_RATE_ENV, raising=False)
    monkeypatch.delenv(DELAY_MS_ENV, raising=False)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    specs = [
        ORDERS,
        "boom=tests.local.test_local_lambda:explode",
        "whoami=tests.local.test_local_lambda:whoami",
        "unmarshalable=tests.local.test_local_lambda:unmarshalable",
    ]
    with serve_in_thread(create_invoke_app(load_functions(specs))) as url:
        yield url


@pytest.fixture(scope="module")
def client(endpoint: str) -> Iterator[Any]:
    client = lambda_client(endpoint)
    yield client
    client.close()


def test_a_gateway_route_to_the_local_function_is_served_by_it(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    start_gateway: GatewayFactory,
    endpoint: str,
) -> None:
    # GIVEN a gateway whose orders route targets `lambda: orders-v2` on the local Invoke API
    fake_aws(monkeypatch, tmp_path)
    monkeypatch.setattr(aws_lambda, "_clients", {})
    gateway = start_gateway(f"""
targets:
  orders-v2: {{lambda: orders-v2, endpoint_url: "{endpoint}", timeout: 5s}}
routes:
  - name: orders
    path: /api/orders
    target: orders-v2
""")
    # WHEN orders are listed, and a missing one asked for
    with httpx.Client(base_url=gateway) as http:
        listed = http.get("/api/orders")
        missing = http.get("/api/orders/999999")
    # THEN the Mangum service answered both through the gateway, its own 404 passed through
    assert listed.status_code == 200, listed.text
    assert listed.headers["x-served-by"] == "orders-v2"
    assert listed.headers["x-gateway-target"] == "orders-v2"
    assert listed.json()["count"] >= 3
    assert (missing.status_code, missing.headers["x-served-by"]) == (404, "orders-v2")
    for closing in aws_lambda._clients.values():
        closing.close()


@pytest.mark.parametrize(
    ("function", "qualifier", "arn"),
    [
        ("whoami", "live", "arn:aws:lambda:us-east-1:000000000000:function:whoami:live"),
        ("whoami:live", None, "arn:aws:lambda:us-east-1:000000000000:function:whoami:live"),
        ("whoami", None, "arn:aws:lambda:us-east-1:000000000000:function:whoami"),
        (ARN, "3", f"{ARN}:3"),
        (f"{ARN}:live", None, f"{ARN}:live"),
    ],
    ids=["qualifier", "name-alias", "bare-name", "arn-qualifier", "arn-alias"],
)
def test_boto3_invoke_calls_the_handler_with_payload_and_context(
    client: Any, function: str, qualifier: str | None, arn: str
) -> None:
    # GIVEN a function named in one of the forms Lambda accepts
    kwargs = {"FunctionName": function, "Payload": b'{"hello": ["world"]}'}
    if qualifier:
        kwargs["Qualifier"] = qualifier
    # WHEN boto3 invokes it
    result, answer = invoke(client, **kwargs)
    # THEN the handler got the payload, and a context saying how it was invoked
    assert result["StatusCode"] == 200
    assert result["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in result
    assert answer["event"] == {"hello": ["world"]}
    assert answer["function_name"] == "whoami"
    assert answer["invoked_function_arn"] == arn
    assert answer["aws_request_id"] == result["ResponseMetadata"]["RequestId"]
    assert 0 < answer["remaining_ms"] <= 60_000


def test_the_mangum_service_answers_alb_events_in_parallel(client: Any) -> None:
    # GIVEN the Mangum handler of orders-v2, which drives an event loop of its own
    event = json.dumps(alb_event("/api/orders/1"))
    # WHEN boto3 invokes it from several threads at once
    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(lambda _: invoke(client, FunctionName="orders-v2", Payload=event), range(12))
        )
    # THEN every invocation got the service's ALB answer
    for result, answer in answers:
        assert result["StatusCode"] == 200
        assert answer["statusCode"] == 200
        assert answer["multiValueHeaders"]["x-served-by"] == ["orders-v2"]


def test_an_unknown_function_is_boto3s_resource_not_found(client: Any) -> None:
    # GIVEN no function called `nope`
    # WHEN boto3 invokes it
    with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
        client.invoke(FunctionName="nope", Payload=b"{}")
    # THEN the error reads as Lambda's, with the ARN that was asked for
    message = caught.value.response["Error"]["Message"]
    assert message == "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"


def test_a_raising_handler_is_a_function_error_with_its_stack(client: Any) -> None:
    # GIVEN a handler that raises RuntimeError
    # WHEN boto3 invokes it
    result, error = invoke(client, FunctionName="boom", Payload=b"{}")
    # THEN Lambda's Unhandled function error carries the type, message and handler frames
    assert (result["StatusCode"], result["FunctionError"]) == (200, "Unhandled")
    assert (error["errorType"], error["errorMessage"]) == ("RuntimeError", "kaboom")
    [frame] = error["stackTrace"]
    assert "in explode" in frame


def test_an_answer_that_is_not_json_is_a_marshal_error(client: Any) -> None:
    # GIVEN a handler returning something JSON cannot hold
    # WHEN boto3 invokes it
    result, error = invoke(client, FunctionName="unmarshalable", Payload=b"{}")
    # THEN it is a function error, as the Python runtime reports it
    assert result["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.MarshalError"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"FunctionName": "whoami", "Payload": b"{not json"}, "InvalidRequestContentException"),
        (
            {"FunctionName": "whoami:live", "Qualifier": "blue", "Payload": b"{}"},
            "InvalidParameterValueException",
        ),
    ],
    ids=["payload-not-json", "two-different-qualifiers"],
)
def test_a_bad_invoke_is_refused_as_lambda_refuses_it(
    client: Any, kwargs: dict[str, Any], code: str
) -> None:
    # GIVEN an invoke Lambda would refuse
    # WHEN boto3 sends it
    with pytest.raises(ClientError) as caught:
        client.invoke(**kwargs)
    # THEN boto3 raises Lambda's error code for it
    assert caught.value.response["Error"]["Code"] == code


@pytest.mark.parametrize(
    ("invocation_type", "status"),
    [("Event", 202), ("DryRun", 204)],
    ids=["event", "dry-run"],
)
def test_asynchronous_and_dry_run_invokes(client: Any, invocation_type: str, status: int) -> None:
    # GIVEN a known function
    # WHEN boto3 invokes it without waiting for the answer
    result = client.invoke(FunctionName="whoami", InvocationType=invocation_type, Payload=b"{}")
    # THEN Lambda's status for that invocation type comes back
    assert result["StatusCode"] == status


def test_a_handler_past_its_timeout_is_a_sandbox_timeout() -> None:
    # GIVEN a handler taking 0.6s under a 0.2s timeout
    app = create_invoke_app({"sleepy": sleepy}, timeout=0.2)
    with serve_in_thread(app) as url:
        client = lambda_client(url)
        # WHEN boto3 invokes it
        started = time.monotonic()
        result, error = invoke(client, FunctionName="sleepy", Payload=b"{}")
        elapsed = time.monotonic() - started
        client.close()
    # THEN the answer is Lambda's timeout error, at the timeout
    assert result["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 0.20 seconds" in error["errorMessage"]
    assert elapsed < 0.55


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("orders-v2", "write NAME=module.path:attr"),
        ("orders-v2=services.orders_v2.app", "write NAME=module.path:attr"),
        ("bad name=services.orders_v2.app:handler", "'bad name' is not a Lambda function name"),
        ("orders-v2=services.no_such_module:handler", "cannot import 'services.no_such_module'"),
        ("orders-v2=services.orders_v2.app:nope", "'services.orders_v2.app' has no 'nope'"),
        ("orders-v2=services.orders_v2.app:SERVED_BY", "is not callable"),
    ],
    ids=["no-equals", "no-colon", "bad-name", "no-module", "no-attribute", "not-callable"],
)
def test_a_bad_function_spec_says_what_is_wrong(spec: str, complaint: str) -> None:
    # GIVEN a --function value that does not name a handler
    # WHEN it is loaded
    with pytest.raises(FunctionSpecError) as caught:
        load_functions([spec])
    # THEN the error quotes it and says why
    assert spec in str(caught.value)
    assert complaint in str(caught.value)


def test_a_function_given_twice_is_refused() -> None:
    # GIVEN the same name twice
    # WHEN both are loaded
    with pytest.raises(FunctionSpecError, match="'orders-v2' is given twice"):
        load_functions([ORDERS, ORDERS])
    # THEN the second is refused rather than silently winning


def test_the_cli_entry_exits_2_on_a_bad_function(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN `gateway local-lambda` options naming a module that does not exist
    monkeypatch.setattr(sys, "path", list(sys.path))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--function", "x=services.nowhere:handler", "--timeout", "5s"])
    # WHEN it runs
    status = run(args)
    # THEN it stops before serving, with status 2 and the reason on stderr
    assert (status, args.timeout) == (2, 5.0)
    assert "cannot import 'services.nowhere'" in capsys.readouterr().err


def test_the_cli_entry_serves_in_a_subprocess() -> None:
    # GIVEN `gateway local-lambda --function orders-v2=... --port N` started as a process
    port = free_port()
    argv = ["-c", SERVE, "--function", ORDERS, "--port", str(port)]
    with serve_process(argv, port):
        client = lambda_client(f"http://127.0.0.1:{port}")
        # WHEN boto3 invokes orders-v2 with an ALB event and a qualifier
        payload = json.dumps(alb_event("/api/orders"))
        result, answer = invoke(client, FunctionName="orders-v2", Qualifier="live", Payload=payload)
        client.close()
    # THEN the service answered it
    assert result["StatusCode"] == 200
    assert answer["statusCode"] == 200
    assert answer["multiValueHeaders"]["x-served-by"] == ["orders-v2"]
