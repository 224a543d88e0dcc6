"""On Lambda nothing runs after the answer: the comparison goes to an asynchronous invocation
of the gateway's own function (with GATEWAY_SHADOW_SECRET), or is counted skipped."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from gateway import shadow_lambda
from gateway.config.model import Route
from gateway.local.functions import load_functions
from gateway.local.invoke_api import create_invoke_app
from gateway.parity.spec import ShadowSpec
from gateway.shadowing import Tee
from gateway.upstreams import aws_lambda
from gateway.upstreams.base import UpstreamRequest
from tests.local.test_local_lambda import lambda_client
from tests.parity.loopback import OrderService
from tests.support.invoke_stub import fake_aws
from tests.support.lambda_kit import alb_event
from tests.support.servers import serve_in_thread, write_config


def test_without_the_shared_secret_a_shadowed_request_on_lambda_is_counted_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the Lambda entry on a table with a shadowed route
    candidate = OrderService()
    with serve_in_thread(OrderService()) as legacy_url, serve_in_thread(candidate) as cand_url:
        config = write_config(
            tmp_path,
            f"""
targets:
  legacy: {{url: "{legacy_url}"}}
  orders-v2: {{url: "{cand_url}"}}
routes:
  - name: orders
    path: /api/orders
    target: legacy
    shadow: {{target: orders-v2}}
""",
        )
        monkeypatch.setenv("GATEWAY_CONFIG", config)
        sys.modules.pop("gateway.lambda_handler", None)
        module = importlib.import_module("gateway.lambda_handler")
        try:
            # WHEN an ALB event for the route is handled
            answer = module.handler(alb_event("GET", "/api/orders/7"), None)
        finally:
            sys.modules.pop("gateway.lambda_handler", None)
            runtime = module.app.state.runtime.current
            asyncio.get_event_loop().run_until_complete(runtime.aclose())

    # THEN the legacy answered, no copy left, and it is counted as skipped
    assert answer["statusCode"] == 200
    assert candidate.hits == []
    assert module.app.state.shadowing.copies[("orders", "skipped")] == 1
    # AND the count reaches CloudWatch as an EMF line (ShadowCopies by route and outcome)
    emf = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if "ShadowCopies" in line
    ]
    assert [(r["route"], r["outcome"], r["ShadowCopies"]) for r in emf] == [
        ("orders", "skipped", 1)
    ]
    [directive, _] = emf[0]["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["route", "outcome"]]


def test_on_lambda_the_comparison_runs_in_an_async_invocation_the_client_does_not_wait_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the gateway as a function of the local Invoke API, its candidate 1 s slow, and the
    # shared secret that lets the function send itself the comparison
    fake_aws(monkeypatch, tmp_path)
    monkeypatch.setattr(aws_lambda, "_clients", {})
    events: list[str] = []
    candidate = OrderService(mode="slow", delay=1.0, events=events)
    with ExitStack() as stack:
        legacy_url = stack.enter_context(serve_in_thread(OrderService(mode="fixed")))
        cand_url = stack.enter_context(serve_in_thread(candidate))
        monkeypatch.setenv("GATEWAY_CONFIG", write_config(tmp_path, table(legacy_url, cand_url)))
        monkeypatch.setenv("GATEWAY_SHADOW_SECRET", "s3cret")
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "gateway")
        sys.modules.pop("gateway.lambda_handler", None)
        functions = load_functions(["gateway=gateway.lambda_handler:handler"])
        module = sys.modules["gateway.lambda_handler"]
        endpoint = stack.enter_context(serve_in_thread(create_invoke_app(functions)))
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", endpoint)
        client = lambda_client(endpoint)
        try:
            # WHEN the client's request is invoked through the Invoke API
            answer = json.loads(
                client.invoke(
                    FunctionName="gateway", Payload=json.dumps(alb_event("GET", "/api/orders/7"))
                )["Payload"].read()
            )
            events.append("client answered")
            copies = module.app.state.shadowing.copies
            deadline = time.monotonic() + 10
            while not copies[("orders", "compared")] and time.monotonic() < deadline:
                time.sleep(0.02)
            # AND a comparison event without the secret is sent
            forged = {"gateway_shadow": {"secret": "guess", "route": "orders"}}
            refused = json.loads(
                client.invoke(FunctionName="gateway", Payload=json.dumps(forged))["Payload"].read()
            )
        finally:
            client.close()
            sys.modules.pop("gateway.lambda_handler", None)

    # THEN the client had the legacy's answer before the candidate answered the copy
    assert answer["statusCode"] == 200
    assert events == ["client answered", "candidate answered"]
    # AND the copy (marked as one) was compared, in the asynchronous invocation
    assert candidate.hits[0][1]["x-gateway-shadow"] == "1"
    assert copies[("orders", "compared")] == 1
    assert refused == {"refused": "secret"}


def table(legacy: str, candidate: str) -> str:
    return f"""
targets:
  legacy: {{url: "{legacy}"}}
  orders-v2: {{url: "{candidate}"}}
routes:
  - name: orders
    path: /api/orders
    target: legacy
    shadow: {{target: orders-v2, compare: {{noise: 0}}}}
"""


@pytest.mark.parametrize(("size", "fits"), [(1000, True), (300_000, False)], ids=["small", "over"])
def test_a_comparison_over_the_async_payload_limit_is_not_sent(size: int, fits: bool) -> None:
    # GIVEN a copied request whose primary answer has SIZE bytes
    spec = ShadowSpec("orders-v2", max_body=1_000_000)
    route = Route("orders", "/api/orders", (("legacy", 100.0),), shadow=spec)
    request = UpstreamRequest("GET", b"/api/orders/7", b"", [], b"", "orders")
    tee = Tee(route, spec, "legacy", request, 200, ())
    tee.keep(b"x" * size)

    # WHEN its comparison event is built  THEN it is sent only within Lambda's 256 KB
    data = shadow_lambda.payload(tee, "s3cret")
    assert (data is not None) is fits
    assert data is None or len(data) <= shadow_lambda.MAX_PAYLOAD
