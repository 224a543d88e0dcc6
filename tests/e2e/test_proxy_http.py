"""Forwarding to HTTP targets, end to end: client -> gateway -> real upstream, on loopback."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from tests.support.gateways import GatewayFactory
from tests.support.servers import (
    free_port,
    raw_tcp_upstream,
    reset_after_request,
    serve_in_thread,
    write_config,
)


def table(legacy: str, canary: str, *, extra_routes: str = "", timeout: str = "10s") -> str:
    return f"""
targets:
  legacy: {{url: "{legacy}", timeout: {timeout}}}
  orders-v2: {{url: "{canary}", timeout: {timeout}}}
routes:
  - name: orders
    path: /api/orders
    split: {{legacy: 0, orders-v2: 100}}
  - name: renamed
    path: /v2/things
    rewrite: /echo/things
    target: legacy
{extra_routes}
  - name: everything-else
    path: /
    target: legacy
"""


def echo(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def header_values(echoed: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in echoed["headers"] if key == name]


@pytest.fixture
def gateway(start_gateway: GatewayFactory, legacy_url: str, orders_v2_url: str) -> str:
    return start_gateway(table(legacy_url, orders_v2_url))


def test_routes_to_the_target_the_table_names(gateway: str) -> None:
    # GIVEN a table sending all orders to orders-v2 and the rest to the legacy
    with httpx.Client(base_url=gateway) as client:
        # WHEN one request goes to each
        orders = client.get("/api/orders")
        users = client.get("/api/users")
    # THEN each answer comes from its target, and says so in the gateway's headers
    assert orders.headers["x-served-by"] == "orders-v2"
    assert orders.headers["x-gateway-route"] == "orders"
    assert orders.headers["x-gateway-target"] == "orders-v2"
    assert users.headers["x-served-by"] == "legacy"
    assert users.headers["x-gateway-route"] == "everything-else"
    assert users.headers["x-gateway-target"] == "legacy"


def test_binary_body_and_method_reach_the_upstream_unchanged(gateway: str) -> None:
    # GIVEN every byte value in a body
    body = bytes(range(256)) * 64
    # WHEN it is PUT through the gateway
    with httpx.Client(base_url=gateway) as client:
        echoed = echo(client.put("/echo/blob", content=body))
    # THEN the upstream saw the same method and bytes
    assert echoed["method"] == "PUT"
    assert base64.b64decode(echoed["body_base64"]) == body


def test_raw_query_is_forwarded_byte_for_byte_and_the_path_in_normal_form(gateway: str) -> None:
    # GIVEN repeated and percent-encoded query keys, and a path with escapes
    url = "/echo/a%20b/%41/caf%c3%a9?x=%41&x=2&y=a%20b+c&%7Ekey=1&flag"
    # WHEN the request goes through
    with httpx.Client(base_url=gateway) as client:
        echoed = echo(client.get(url))
    # THEN the query is exactly as sent; the path is the one normal form the route matched:
    # escapes of unreserved characters decoded, other escapes kept (hex in upper case)
    assert echoed["query"] == "x=%41&x=2&y=a%20b+c&%7Ekey=1&flag"
    assert echoed["raw_path"] == "/echo/a%20b/A/caf%C3%A9"


def test_repeated_request_headers_survive_and_hop_by_hop_are_dropped(gateway: str) -> None:
    # GIVEN repeated headers, hop-by-hop headers and one named by Connection
    headers = [
        ("x-tag", "one"),
        ("x-tag", "two"),
        ("connection", "keep-alive, x-private"),
        ("x-private", "secret"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ("upgrade", "websocket"),
        ("x-forwarded-for", "203.0.113.9"),
    ]
    # WHEN they go through the gateway
    with httpx.Client(base_url=gateway) as client:
        echoed = echo(client.get("/echo/headers", headers=headers))
    names = [name for name, _ in echoed["headers"]]
    # THEN repeats survive in order, and hop-by-hop ones never reach the upstream
    assert header_values(echoed, "x-tag") == ["one", "two"]
    for dropped in ("x-private", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert dropped not in names
    # AND X-Forwarded-* say who asked and how, Host is the upstream's
    # (no trusted_proxies here: the client's own X-Forwarded-For is its say, and dropped)
    assert header_values(echoed, "x-forwarded-for") == ["127.0.0.1"]
    assert header_values(echoed, "x-forwarded-proto") == ["http"]
    assert header_values(echoed, "x-forwarded-host") == [gateway.removeprefix("http://")]
    upstream_host = header_values(echoed, "host")
    assert upstream_host and upstream_host[0] != gateway.removeprefix("http://")


def test_rewrite_replaces_the_matched_prefix(gateway: str) -> None:
    # GIVEN a route /v2/things rewritten to /echo/things
    with httpx.Client(base_url=gateway) as client:
        # WHEN a path below it is asked for
        echoed = echo(client.get("/v2/things/7/parts?q=1"))
        exact = echo(client.get("/v2/things"))
    # THEN the prefix is replaced, the rest and the query kept
    assert echoed["raw_path"] == "/echo/things/7/parts"
    assert echoed["query"] == "q=1"
    assert exact["raw_path"] == "/echo/things"


def test_prefix_matches_whole_segments_only(gateway: str) -> None:
    # GIVEN the orders route on /api/orders
    with httpx.Client(base_url=gateway) as client:
        # WHEN a path shares its letters but not its segment
        response = client.get("/api/ordersX")
    # THEN it falls to the catch-all route
    assert response.headers["x-gateway-route"] == "everything-else"


def test_set_cookies_and_repeated_response_headers_stay_separate(gateway: str) -> None:
    # GIVEN an upstream answering two Set-Cookie and a repeated header
    with httpx.Client(base_url=gateway) as client:
        # WHEN it answers through the gateway
        response = client.get("/_stub/cookies")
    # THEN the client sees each one separately
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
    assert response.headers.get_list("x-multi") == ["one", "two"]


def test_encoded_answers_pass_through_untouched(gateway: str) -> None:
    # GIVEN an upstream answering gzip
    # WHEN it is fetched without decoding
    with httpx.Client(base_url=gateway) as client, client.stream("GET", "/_stub/gzip") as response:
        raw = b"".join(response.iter_raw())
    # THEN the bytes are still gzip, with the encoding header
    assert response.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(raw))["compressed"] is True


@pytest.mark.parametrize("status", [201, 204, 404, 500, 503], ids=lambda s: f"status-{s}")
def test_upstream_statuses_pass_through(gateway: str, status: int) -> None:
    # GIVEN an upstream answering a status of its own
    with httpx.Client(base_url=gateway) as client:
        # WHEN it is asked through the gateway
        response = client.get(f"/_stub/status/{status}")
    # THEN that status is the answer, not a gateway error
    assert response.status_code == status
    assert response.headers["x-gateway-target"] == "legacy"
    if status != 204:
        assert response.json() == {"status": status}


def test_no_route_is_a_json_404(start_gateway: GatewayFactory, legacy_url: str) -> None:
    # GIVEN a table with no catch-all
    url = start_gateway(
        f"""
targets: {{legacy: {{url: "{legacy_url}"}}}}
routes: [{{name: only, path: /only, target: legacy}}]
"""
    )
    # WHEN a path outside every route is asked for
    response = httpx.get(f"{url}/elsewhere")
    # THEN the answer is the gateway's JSON 404
    assert response.status_code == 404
    assert response.json()["error"] == "no_route"
    assert response.json()["route"] is None


def test_refused_connection_is_a_502_naming_route_and_target(
    start_gateway: GatewayFactory, legacy_url: str
) -> None:
    # GIVEN a target on a port where nothing listens
    url = start_gateway(table(legacy_url, f"http://127.0.0.1:{free_port()}"))
    # WHEN its route is asked
    response = httpx.get(f"{url}/api/orders")
    # THEN the gateway answers 502 in its JSON shape
    assert response.status_code == 502
    assert response.json()["error"] == "upstream_unavailable"
    assert response.json()["route"] == "orders"
    assert response.json()["target"] == "orders-v2"
    assert response.headers["x-gateway-target"] == "orders-v2"


def test_reset_connection_is_a_502(start_gateway: GatewayFactory, legacy_url: str) -> None:
    # GIVEN a target that resets every connection once it has read the request
    with raw_tcp_upstream(reset_after_request) as resetting:
        url = start_gateway(table(legacy_url, resetting))
        # WHEN its route is asked, more than once
        responses = [httpx.get(f"{url}/api/orders") for _ in range(3)]
    # THEN every answer is a clean 502, and the gateway keeps serving
    assert [r.status_code for r in responses] == [502, 502, 502]
    assert httpx.get(f"{url}/_gateway/health").status_code == 200


def test_slow_upstream_is_a_504_after_the_target_timeout(
    start_gateway: GatewayFactory, legacy_url: str
) -> None:
    # GIVEN a legacy target with a 250ms timeout
    url = start_gateway(table(legacy_url, legacy_url, timeout="250ms"))
    # WHEN the upstream takes two seconds
    response = httpx.get(f"{url}/_stub/slow?seconds=2", timeout=10)
    # THEN the gateway gives up with a 504
    assert response.status_code == 504
    assert response.json()["error"] == "upstream_timeout"
    assert response.json()["target"] == "legacy"
    # AND the next request on the same target is served normally
    assert httpx.get(f"{url}/api/users").status_code == 200


def test_admin_health_and_routes(gateway: str) -> None:
    # GIVEN a running gateway
    with httpx.Client(base_url=gateway) as client:
        # WHEN the admin API is asked
        health = client.get("/_gateway/health")
        routes = client.get("/_gateway/routes").json()
        missing = client.get("/_gateway/nothing")
    # THEN it reports health, the targets and routes with their splits
    assert health.json() == {"status": "ok"}
    assert set(routes["targets"]) == {"legacy", "orders-v2"}
    assert routes["routes"][0]["split"] == {"legacy": 0.0, "orders-v2": 100.0}
    assert len(routes["version"]) == 12
    assert missing.status_code == 404
    assert missing.json()["error"] == "admin"


class Broken:
    """An upstream with a bug: it raises something no upstream should."""

    name = "legacy"
    kind = "http"

    async def forward(self, request: object) -> object:
        raise KeyError("internal detail")

    async def aclose(self) -> None:
        return None


def test_a_bug_is_a_json_500_that_leaks_nothing(
    tmp_path: Path, legacy_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a gateway whose upstream object fails in a way nothing maps
    app = create_app(write_config(tmp_path, table(legacy_url, legacy_url)))
    runtime = app.state.runtime.current
    upstreams = MappingProxyType({"legacy": Broken(), "orders-v2": Broken()})
    app.state.runtime.current = dataclasses.replace(runtime, upstreams=upstreams)
    with serve_in_thread(app) as url:
        # WHEN a request reaches it
        response = httpx.get(f"{url}/api/users")
        health = httpx.get(f"{url}/_gateway/health")
    # THEN the client gets the gateway's JSON 500, without the internals; the log has them
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "internal detail" not in response.text
    assert "internal detail" in caplog.text
    assert health.status_code == 200
