"""Traces, log lines and metrics for requests through a real gateway to a real upstream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.telemetry.access_log import Redactor
from gateway.upstreams import aws_lambda
from tests.support.gateways import GatewayFactory
from tests.support.invoke_stub import fake_aws, running_stub
from tests.support.telemetry_kit import recorded

INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_PARENT = "00f067aa0ba902b7"


def table(legacy: str) -> str:
    return f"""
targets:
  legacy: {{url: "{legacy}"}}
routes:
  - {{name: echo, path: /echo, split: {{legacy: 100}}}}
  - {{name: rest, path: /, target: legacy}}
"""


def received_headers(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return {name: value for name, value in body["headers"]}


def test_one_trace_spans_gateway_and_upstream(
    start_gateway: GatewayFactory, legacy_url: str
) -> None:
    # GIVEN a gateway recording its spans
    kit = recorded()
    url = start_gateway(table(legacy_url), kit.telemetry)
    # WHEN a request goes through it to an upstream that echoes what it got
    seen = received_headers(httpx.get(f"{url}/echo/x"))
    server, client = kit.span("SERVER"), kit.span("CLIENT")
    # THEN the server span is named after the route, the client span is its child
    assert server.name == "GET echo"
    assert server.attributes is not None and server.attributes["gateway.route"] == "echo"
    assert server.attributes["gateway.target"] == "legacy"
    assert server.attributes["gateway.weight"] == 100.0
    assert server.attributes["http.response.status_code"] == 200
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    # AND the upstream received both formats naming the client span as parent
    trace_id = f"{server.context.trace_id:032x}"
    client_id = f"{client.context.span_id:016x}"
    assert seen["traceparent"] == f"00-{trace_id}-{client_id}-01"
    assert seen["x-amzn-trace-id"] == (
        f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={client_id};Sampled=1"
    )


def test_incoming_traceparent_is_continued(start_gateway: GatewayFactory, legacy_url: str) -> None:
    # GIVEN a caller already in a trace
    kit = recorded()
    url = start_gateway(table(legacy_url), kit.telemetry)
    parent = f"00-{INCOMING_TRACE}-{INCOMING_PARENT}-01"
    # WHEN it calls through the gateway
    seen = received_headers(
        httpx.get(f"{url}/echo/x", headers={"traceparent": parent, "tracestate": "v=1"})
    )
    server = kit.span("SERVER")
    # THEN the gateway's spans join that trace under the caller's span
    assert f"{server.context.trace_id:032x}" == INCOMING_TRACE
    assert server.parent is not None and f"{server.parent.span_id:016x}" == INCOMING_PARENT
    assert seen["traceparent"].startswith(f"00-{INCOMING_TRACE}-")
    assert seen["tracestate"] == "v=1"


def test_alb_trace_id_is_adopted(start_gateway: GatewayFactory, legacy_url: str) -> None:
    # GIVEN the header an ALB adds: a Root and no Parent
    kit = recorded()
    url = start_gateway(table(legacy_url), kit.telemetry)
    root = "1-62fa9327-21cdd4da4c6db451490a5fb7"
    # WHEN the request goes through
    seen = received_headers(httpx.get(f"{url}/echo/x", headers={"x-amzn-trace-id": f"Root={root}"}))
    server = kit.span("SERVER")
    # THEN the trace is the ALB's, and the gateway's span is its root
    assert f"{server.context.trace_id:032x}" == "62fa932721cdd4da4c6db451490a5fb7"
    assert server.parent is None
    assert seen["x-amzn-trace-id"].startswith(f"Root={root};Parent=")


def test_tracing_off_passes_trace_headers_through(
    start_gateway: GatewayFactory, legacy_url: str
) -> None:
    # GIVEN a gateway with tracing off
    kit = recorded(tracing=False)
    url = start_gateway(table(legacy_url), kit.telemetry)
    parent = f"00-{INCOMING_TRACE}-{INCOMING_PARENT}-01"
    # WHEN a traced request goes through
    seen = received_headers(httpx.get(f"{url}/echo/x", headers={"traceparent": parent}))
    # THEN the upstream gets the caller's header as it was, and the log line still comes
    assert seen["traceparent"] == parent
    assert kit.logs()[0]["trace_id"] is None
    assert kit.logs()[0]["route"] == "echo"


def test_one_json_log_line_per_request(start_gateway: GatewayFactory, legacy_url: str) -> None:
    # GIVEN a gateway writing its log lines to a list
    kit = recorded()
    url = start_gateway(table(legacy_url), kit.telemetry)
    # WHEN two requests are answered, one with a body
    httpx.post(f"{url}/echo/post?x=1", content=b"12345")
    httpx.get(f"{url}/nowhere-but-legacy")
    first, second = kit.logs()
    server = [s for s in kit.spans() if s.kind.name == "SERVER"][0]
    # THEN each is one line with what a person queries for
    assert first["trace_id"] == f"{server.context.trace_id:032x}"
    assert first["span_id"] == f"{server.context.span_id:016x}"
    assert (first["route"], first["target"], first["method"]) == ("echo", "legacy", "POST")
    assert (first["path"], first["query"], first["status"]) == ("/echo/post", "x=1", 200)
    assert first["bytes_in"] == 5 and first["bytes_out"] > 0
    assert first["duration_ms"] >= first["upstream_ms"] > 0
    assert first["client"] == "127.0.0.1"
    assert first["fallback"] is False and first["retry"] is False
    assert second["route"] == "rest"


def test_secrets_never_reach_logs_spans_or_error_bodies(
    start_gateway: GatewayFactory, legacy_url: str
) -> None:
    # GIVEN a gateway that also redacts a header and a query key of its own
    kit = recorded(redactor=Redactor(headers=["x-internal-secret"], query_keys=["session"]))
    url = start_gateway(table(legacy_url), kit.telemetry)
    secrets = {
        "authorization": "Bearer sekret-token-1",
        "cookie": "sid=sekret-cookie-2",
        "x-api-key": "sekret-key-3",
        "proxy-authorization": "Basic sekret-proxy-4",
        "x-internal-secret": "sekret-custom-5",
    }
    query = "?token=sekret-query-6&session=sekret-query-7&page=2"
    # WHEN they are sent on a proxied request, an answer with Set-Cookie, and an error
    httpx.get(f"{url}/echo/x{query}", headers=secrets)
    httpx.get(f"{url}/_stub/cookies{query}", headers=secrets)
    error = httpx.get(f"{url}/_stub/status/502{query}", headers=secrets)
    # THEN no secret value appears in a log line, a span or an error body
    recorded_text = "\n".join(kit.lines) + json.dumps(
        [json.loads(span.to_json()) for span in kit.spans()]
    )
    for secret in [*secrets.values(), "sekret-query-6", "sekret-query-7", "b=2", "a=1"]:
        assert secret not in recorded_text
        assert secret not in error.text
    assert "token=REDACTED" in recorded_text and "page=2" in recorded_text


def test_metrics_count_requests_errors_and_latency_per_route_and_target(
    start_gateway: GatewayFactory, legacy_url: str
) -> None:
    # GIVEN a gateway
    kit = recorded(tracing=False)
    url = start_gateway(table(legacy_url), kit.telemetry)
    # WHEN three requests succeed and two fail on the upstream
    for path in ["/echo/a", "/echo/b", "/echo/c", "/_stub/status/503", "/_stub/status/500"]:
        httpx.get(url + path)
    text = httpx.get(f"{url}/_gateway/metrics").text
    # THEN Prometheus text gives each route x target its counts and histogram
    assert 'gateway_requests_total{route="echo",target="legacy"} 3.0' in text
    assert 'gateway_requests_total{route="rest",target="legacy"} 2.0' in text
    assert 'gateway_errors_5xx_total{route="rest",target="legacy"} 2.0' in text
    assert 'gateway_request_duration_seconds_count{route="echo",target="legacy"} 3.0' in text
    assert 'gateway_request_duration_seconds_bucket{le="+Inf",route="echo",target="legacy"}' in text


@pytest.mark.parametrize("tracing", [True, False], ids=["tracing-on", "tracing-off"])
def test_no_route_is_logged_and_traced_too(
    start_gateway: GatewayFactory, legacy_url: str, tracing: bool
) -> None:
    # GIVEN a table without a catch-all
    kit = recorded(tracing=tracing)
    url = start_gateway(
        f'targets: {{legacy: {{url: "{legacy_url}"}}}}\n'
        "routes: [{name: o, path: /o, target: legacy}]",
        kit.telemetry,
    )
    # WHEN an unrouted path is asked
    assert httpx.get(f"{url}/elsewhere").status_code == 404
    # THEN the log line says so, and the server span carries the error
    assert kit.logs()[0]["status"] == 404 and kit.logs()[0]["route"] is None
    if tracing:
        server = kit.span("SERVER")
        assert server.attributes is not None and server.attributes["error.type"] == "no_route"


def test_lambda_invokes_carry_the_trace_in_the_event_headers(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a gateway recording spans, with a Lambda target on a local Invoke API stub
    fake_aws(monkeypatch, tmp_path)
    clients: dict[Any, Any] = {}
    monkeypatch.setattr(aws_lambda, "_clients", clients)
    kit = recorded()
    with running_stub() as (stub, endpoint):
        stub.answer("orders", {"statusCode": 200, "body": "ok"})
        url = start_gateway(
            f"""
targets: {{fn: {{lambda: orders, region: us-east-1, endpoint_url: "{endpoint}"}}}}
routes: [{{name: orders, path: /, target: fn}}]
""",
            kit.telemetry,
        )
        # WHEN a request is answered by the function
        assert httpx.get(f"{url}/api/orders").status_code == 200
        [invocation] = stub.invocations
    for boto_client in clients.values():
        boto_client.close()
    server, client = kit.span("SERVER"), kit.span("CLIENT")
    headers = invocation.event["multiValueHeaders"]
    trace_id = f"{server.context.trace_id:032x}"
    client_id = f"{client.context.span_id:016x}"
    # THEN the event's headers name the gateway's client span as parent, in both formats
    assert headers["traceparent"] == [f"00-{trace_id}-{client_id}-01"]
    assert headers["x-amzn-trace-id"][0].startswith(f"Root=1-{trace_id[:8]}-{trace_id[8:]};")
    assert client.attributes is not None and client.attributes["gateway.upstream.kind"] == "lambda"
