import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from mangum.types import LambdaCognitoIdentity, LambdaMobileClientContext

from services.orders_v2.app import create_app, handler
from services.orders_v2.faults import DELAY_MS_ENV, FAIL_RATE_ENV, FaultInjector
from tests.support.servers import free_port, serve_in_thread, serve_process

NEW_ORDER = {
    "user_id": 3,
    "items": [{"product_id": 2, "quantity": 4, "unit_price_cents": 2500}],
}


@pytest.fixture
def environ() -> dict[str, str]:
    """The service's environment, private to one test and editable while it serves."""
    return {}


@pytest.fixture
def orders_v2(environ: dict[str, str]) -> Iterator[httpx.Client]:
    app = create_app(FaultInjector(environ=environ))
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url) as client:
        yield client


@dataclass
class FakeLambdaContext:
    function_name: str = "orders-v2"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:orders-v2"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    log_group_name: str = "/aws/lambda/orders-v2"
    log_stream_name: str = "2024/03/01/[$LATEST]abcdef"
    identity: LambdaCognitoIdentity | None = None
    client_context: LambdaMobileClientContext | None = None

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def alb_event(method: str, path: str, **shape: Any) -> dict[str, Any]:
    """An ALB target-group event as Lambda receives it; `shape` picks single or multi-value."""
    return {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
                "targetgroup/orders-v2/73e2d6bc24d8a067"
            }
        },
        "httpMethod": method,
        "path": path,
        "body": "",
        "isBase64Encoded": False,
        **shape,
    }


def test_orders_are_served_by_orders_v2(orders_v2: httpx.Client) -> None:
    # GIVEN the service with its migrated seed orders
    # WHEN the list is read
    response = orders_v2.get("/api/orders")
    # THEN it has the legacy's shape, marked as orders-v2 in header and body
    assert response.status_code == 200
    assert response.headers["x-served-by"] == "orders-v2"
    body = response.json()
    assert body["served_by"] == "orders-v2"
    assert body["count"] == len(body["orders"]) == 3


def test_created_order_is_readable(orders_v2: httpx.Client) -> None:
    # GIVEN a fresh service
    # WHEN an order is posted
    created = orders_v2.post("/api/orders", json=NEW_ORDER)
    # THEN it is created and can be read back
    assert created.status_code == 201
    order = created.json()
    assert order["total_cents"] == 4 * 2500
    assert orders_v2.get(f"/api/orders/{order['id']}").json() == order


def test_missing_order_is_a_json_404(orders_v2: httpx.Client) -> None:
    # GIVEN an id no order has
    # WHEN it is read
    response = orders_v2.get("/api/orders/999")
    # THEN the answer is a JSON 404 from orders-v2
    assert response.status_code == 404
    assert response.headers["x-served-by"] == "orders-v2"
    assert response.json() == {
        "error": "not_found",
        "detail": "order 999 not found",
        "served_by": "orders-v2",
    }


def test_health(orders_v2: httpx.Client) -> None:
    # GIVEN a running service
    # WHEN its health is checked
    response = orders_v2.get("/health")
    # THEN it is ok
    assert response.json() == {"status": "ok", "served_by": "orders-v2"}


def test_runtime_fault_fails_only_the_api(orders_v2: httpx.Client) -> None:
    # GIVEN every request set to fail at runtime
    assert orders_v2.put("/_fault", json={"fail_rate": 1.0}).status_code == 200
    # WHEN the API, the health check and the fault endpoint are called
    failed = orders_v2.get("/api/orders")
    health = orders_v2.get("/health")
    faults = orders_v2.get("/_fault")
    # THEN only the API fails, with the injected error, still marked as orders-v2
    assert failed.status_code == 500
    assert failed.json() == {"error": "injected"}
    assert failed.headers["x-served-by"] == "orders-v2"
    assert health.status_code == 200
    assert faults.json() == {"fail_rate": 1.0, "delay_ms": 0.0}


def test_clearing_the_runtime_fault_recovers(orders_v2: httpx.Client) -> None:
    # GIVEN every request set to fail at runtime
    orders_v2.put("/_fault", json={"fail_rate": 1.0})
    # WHEN the runtime fault is cleared
    cleared = orders_v2.delete("/_fault")
    # THEN the API answers again
    assert cleared.json() == {"fail_rate": 0.0, "delay_ms": 0.0}
    assert orders_v2.get("/api/orders").status_code == 200


def test_a_dropped_field_leaves_every_json_answer_until_cleared(orders_v2: httpx.Client) -> None:
    # GIVEN the field `status` set to be dropped at runtime
    assert orders_v2.put("/_fault", json={"drop_field": "status"}).json()["drop_field"] == "status"
    # WHEN an order and the list are read, then again once the fault is cleared
    one, listed = orders_v2.get("/api/orders/1").json(), orders_v2.get("/api/orders").json()
    orders_v2.delete("/_fault")
    again = orders_v2.get("/api/orders/1").json()
    # THEN the field is gone from every order, and back after the clear
    assert "status" not in one and "id" in one
    assert all("status" not in order for order in listed["orders"])
    assert "status" in again


def test_runtime_delay_slows_the_api(orders_v2: httpx.Client) -> None:
    # GIVEN 300 ms of latency added at runtime
    orders_v2.put("/_fault", json={"delay_ms": 300})
    started = time.monotonic()
    # WHEN the API is called
    response = orders_v2.get("/api/orders")
    # THEN it answers, but only after the delay
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_environment_is_read_per_request(orders_v2: httpx.Client, environ: dict[str, str]) -> None:
    # GIVEN a running service whose environment then asks for every request to fail
    assert orders_v2.get("/api/orders").status_code == 200
    environ[FAIL_RATE_ENV] = "1"
    # WHEN the API is called again
    response = orders_v2.get("/api/orders")
    # THEN the new environment applies without a restart
    assert response.status_code == 500


def test_runtime_setting_overrides_the_environment(
    orders_v2: httpx.Client, environ: dict[str, str]
) -> None:
    # GIVEN an environment failing every request and adding latency
    environ[FAIL_RATE_ENV] = "1"
    environ[DELAY_MS_ENV] = "5"
    # WHEN the fail rate alone is set to zero at runtime
    faults = orders_v2.put("/_fault", json={"fail_rate": 0}).json()
    # THEN the API answers, and the delay left unset still comes from the environment
    assert orders_v2.get("/api/orders").status_code == 200
    assert faults == {"fail_rate": 0.0, "delay_ms": 5.0}


def test_fail_rate_is_a_share_of_requests() -> None:
    # GIVEN half the requests set to fail, and a random source that alternates low and high
    draws = iter([0.1, 0.9, 0.4, 0.6])
    injector = FaultInjector(environ={FAIL_RATE_ENV: "0.5"}, rng=lambda: next(draws))
    with serve_in_thread(create_app(injector)) as base_url, httpx.Client(base_url=base_url) as c:
        # WHEN four requests are made
        statuses = [c.get("/api/orders").status_code for _ in range(4)]
    # THEN those drawing under the rate fail and the others pass
    assert statuses == [500, 200, 500, 200]


@pytest.mark.parametrize(
    "body",
    [{"fail_rate": 1.5}, {"fail_rate": -0.1}, {"delay_ms": -1}, {"fail_rate": "often"}],
    ids=["rate-above-one", "negative-rate", "negative-delay", "not-a-number"],
)
def test_invalid_runtime_fault_is_rejected(orders_v2: httpx.Client, body: dict[str, Any]) -> None:
    # GIVEN a fault setting out of range
    # WHEN it is put
    response = orders_v2.put("/_fault", json=body)
    # THEN it is refused and nothing changes
    assert response.status_code == 422
    assert orders_v2.get("/_fault").json() == {"fail_rate": 0.0, "delay_ms": 0.0}


@pytest.mark.parametrize(
    "raw", ["often", "-1", "2", "nan", ""], ids=["word", "negative", "above-one", "nan", "empty"]
)
def test_invalid_environment_fail_rate_means_no_faults(raw: str) -> None:
    # GIVEN an environment with an unusable fail rate
    injector = FaultInjector(environ={FAIL_RATE_ENV: raw})
    # WHEN the settings are read
    settings = injector.settings()
    # THEN no fault is injected
    assert settings.fail_rate == 0.0


def test_default_injector_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the process environment asking for faults
    monkeypatch.setenv(FAIL_RATE_ENV, "0.25")
    monkeypatch.setenv(DELAY_MS_ENV, "40")
    # WHEN an injector built with defaults reads its settings
    settings = FaultInjector().settings()
    # THEN they come from the environment
    assert (settings.fail_rate, settings.delay_ms) == (0.25, 40.0)


@pytest.fixture
def a_current_event_loop() -> Iterator[None]:
    """Mangum runs each event on the current event loop, as on Lambda, where the module's
    import set one; a test module run before may have closed that one."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    loop.close()
    asyncio.set_event_loop(None)


@pytest.mark.usefixtures("a_current_event_loop")
def test_lambda_handler_answers_an_alb_event(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no faults configured, and an ALB event with single-value headers
    monkeypatch.delenv(FAIL_RATE_ENV, raising=False)
    monkeypatch.delenv(DELAY_MS_ENV, raising=False)
    event = alb_event(
        "GET",
        "/api/orders",
        headers={"host": "orders.internal", "accept": "application/json"},
        queryStringParameters={},
    )
    # WHEN the Lambda handler is invoked
    result = handler(event, FakeLambdaContext())
    # THEN it answers the orders list in the single-value shape
    assert result["statusCode"] == 200
    assert result["isBase64Encoded"] is False
    assert result["headers"]["x-served-by"] == "orders-v2"
    assert len(json.loads(result["body"])["orders"]) >= 3


@pytest.mark.usefixtures("a_current_event_loop")
def test_lambda_handler_creates_from_a_base64_multi_value_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN no faults configured, and a multi-value ALB event with a base64 JSON body
    monkeypatch.delenv(FAIL_RATE_ENV, raising=False)
    monkeypatch.delenv(DELAY_MS_ENV, raising=False)
    event = alb_event(
        "POST",
        "/api/orders",
        multiValueHeaders={"host": ["orders.internal"], "content-type": ["application/json"]},
        multiValueQueryStringParameters={},
        body=base64.b64encode(json.dumps(NEW_ORDER).encode()).decode(),
        isBase64Encoded=True,
    )
    # WHEN the Lambda handler is invoked
    result = handler(event, FakeLambdaContext())
    # THEN the order is created and the answer uses the multi-value shape
    assert result["statusCode"] == 201
    assert result["multiValueHeaders"]["x-served-by"] == ["orders-v2"]
    assert json.loads(result["body"])["total_cents"] == 4 * 2500


def test_module_entry_point_serves_on_loopback() -> None:
    # GIVEN the service started as `python -m services.orders_v2 --port PORT`
    port = free_port()
    with serve_process(["-m", "services.orders_v2", "--port", str(port)], port):
        # WHEN its health is checked on loopback
        response = httpx.get(f"http://127.0.0.1:{port}/health")
    # THEN it answers as orders-v2
    assert response.headers["x-served-by"] == "orders-v2"
