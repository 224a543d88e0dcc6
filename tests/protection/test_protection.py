"""Each protection against real upstreams on loopback that fail, stall or refuse on request:
retries, the circuit breaker, fallback, concurrency limit, rate limit, auth, path hygiene
and request limits."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.faulty import Faulty
from tests.support.gateways import GatewayFactory
from tests.support.jwt_kit import AUDIENCE, ISSUER, claims, jwks, rsa_key
from tests.support.servers import free_port, serve_in_thread

API_KEY = "k-3f9a7c1e"
API_KEY_HASH = "sha256:" + hashlib.sha256(API_KEY.encode()).hexdigest()


@pytest.fixture
def faulty() -> Iterator[tuple[str, Faulty]]:
    app = Faulty()
    with serve_in_thread(app) as url:
        yield url, app


def stats(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/stats").json()
    return body


def test_idempotent_requests_are_retried_on_configured_statuses(
    start_gateway: GatewayFactory, faulty: tuple[str, Faulty]
) -> None:
    # GIVEN a target retrying 503s, whose first answer per key is a 503
    url, _ = faulty
    gateway = start_gateway(
        f"""
targets:
  svc: {{url: "{url}", retry: {{attempts: 3, on: [503]}}, breaker: off}}
routes: [{{name: all, path: /, target: svc}}]
"""
    )
    # WHEN a GET and a POST meet that first failure
    got = httpx.get(f"{gateway}/hit/g?fail=1")
    posted = httpx.post(f"{gateway}/hit/p?fail=1", content=b"once")
    # THEN the GET is retried to success, the POST is never sent twice
    assert got.status_code == 200 and got.json()["hit"] == 2
    assert posted.status_code == 503
    assert stats(url)["methods"]["p"] == ["POST"]


def test_the_breaker_opens_and_fails_fast(start_gateway: GatewayFactory, legacy_url: str) -> None:
    # GIVEN a target that refuses connections, with a breaker opening after 3 failures
    gateway = start_gateway(
        f"""
targets:
  gone:
    url: "http://127.0.0.1:{free_port()}"
    retry: {{attempts: 1}}
    breaker: {{consecutive_failures: 3, open_for: 60s}}
routes: [{{name: all, path: /, target: gone}}]
"""
    )
    # WHEN five requests arrive
    statuses = [httpx.get(f"{gateway}/x") for _ in range(5)]
    metrics = httpx.get(f"{gateway}/_gateway/metrics").text
    # THEN three reach the dead target, then the open breaker answers 503 at once
    assert [r.status_code for r in statuses] == [502, 502, 502, 503, 503]
    assert statuses[3].json()["error"] == "circuit_open"
    assert int(statuses[3].headers["retry-after"]) >= 59
    assert 'gateway_breaker_transitions_total{state="open",target="gone"} 1.0' in metrics


def fallback_table(canary: str, legacy: str, extra: str = "") -> str:
    return f"""
targets:
  canary: {{url: "{canary}", retry: {{attempts: 1}}, breaker: off}}
  legacy: {{url: "{legacy}"}}
routes:
  - name: orders
    path: /
    target: canary
    fallback: legacy
{extra}
"""


def test_fallback_catches_what_the_new_service_drops(
    start_gateway: GatewayFactory, faulty: tuple[str, Faulty]
) -> None:
    # GIVEN a new service that refuses connections, with the legacy as fallback
    url, _ = faulty
    gateway = start_gateway(fallback_table(f"http://127.0.0.1:{free_port()}", url))
    # WHEN a GET and a POST arrive
    got = httpx.get(f"{gateway}/hit/g")
    posted = httpx.post(f"{gateway}/hit/p", content=b"x")
    metrics = httpx.get(f"{gateway}/_gateway/metrics").text
    # THEN the GET is answered by the legacy and marked; the POST is not sent twice
    assert got.status_code == 200 and got.headers["x-gateway-fallback"] == "true"
    assert got.headers["x-gateway-target"] == "legacy"
    assert posted.status_code == 502 and "p" not in stats(url)["hits"]
    assert "gateway_fallbacks_total{" in metrics and 'to_target="legacy"' in metrics
    # the failed tries count for the canary: its evidence in canary analysis
    assert 'gateway_requests_total{route="orders",target="canary"} 2.0' in metrics
    assert 'gateway_requests_total{route="orders",target="legacy"} 1.0' in metrics


def test_fallback_on_a_status_hands_unmigrated_endpoints_back(
    start_gateway: GatewayFactory, faulty: tuple[str, Faulty], legacy_url: str
) -> None:
    # GIVEN a new service that answers 404 for an endpoint it does not have yet
    url, _ = faulty
    gateway = start_gateway(fallback_table(url, legacy_url, "    fallback_on: [404]"))
    # WHEN that endpoint is asked for
    response = httpx.get(f"{gateway}/api/users?fail=1&status=404")
    # THEN the legacy answers it, and it is counted as a fallback
    assert response.status_code == 200
    assert response.headers["x-served-by"] == "legacy"
    assert response.headers["x-gateway-fallback"] == "true"


def test_the_legacy_never_sees_more_than_its_limit(
    start_gateway: GatewayFactory, faulty: tuple[str, Faulty]
) -> None:
    # GIVEN a legacy limited to 2 requests in flight, queueing others for 100 ms
    url, _ = faulty
    gateway = start_gateway(
        f"""
targets:
  legacy: {{url: "{url}", max_concurrency: 2, queue_timeout: 100ms}}
routes: [{{name: all, path: /, target: legacy}}]
"""
    )

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as client:
            calls = [client.get(f"{gateway}/slow/s{i}?seconds=0.5") for i in range(6)]
            return await asyncio.gather(*calls)

    # WHEN six slow requests arrive at once
    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    # THEN two are served, the rest get a quick 503 with Retry-After, never more than 2 inside
    assert codes == [200, 200, 503, 503, 503, 503]
    refused = [r for r in responses if r.status_code == 503]
    assert all(r.json()["error"] == "overloaded" and r.headers["retry-after"] for r in refused)
    assert stats(url)["max_in_flight"] == 2


def test_inbound_rate_limit_per_client(start_gateway: GatewayFactory, legacy_url: str) -> None:
    # GIVEN a route allowing 3 requests at once, refilled 1 per second
    gateway = start_gateway(
        f"""
targets: {{legacy: {{url: "{legacy_url}"}}}}
routes: [{{name: all, path: /, target: legacy, rate: 1/s, burst: 3}}]
"""
    )
    # WHEN five requests come at once
    codes = [httpx.get(f"{gateway}/api/users").status_code for _ in range(5)]
    last = httpx.get(f"{gateway}/api/users")
    # THEN the burst passes and the rest get 429 with Retry-After
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    assert last.json()["error"] == "rate_limited" and last.headers["retry-after"] == "1"


def auth_table(legacy: str, jwks_file: str) -> str:
    return f"""
targets: {{legacy: {{url: "{legacy}"}}}}
routes:
  - name: admin
    path: /admin
    rewrite: /echo/admin
    target: legacy
    auth: {{api_keys: {{header: x-api-key, keys: ["{API_KEY_HASH}"]}}}}
  - name: orders
    path: /api/orders
    target: legacy
    auth:
      jwt:
        {{issuer: "{ISSUER}", audience: {AUDIENCE}, jwks_file: {jwks_file}, scopes: [orders.read]}}
    sticky: jwt:sub
  - name: public
    path: /
    target: legacy
"""


@pytest.fixture
def secured(start_gateway: GatewayFactory, legacy_url: str, tmp_path: Path) -> tuple[str, Any]:
    key = rsa_key("k1")
    (tmp_path / "jwks.json").write_text(json.dumps(jwks(key)))
    return start_gateway(auth_table(legacy_url, str(tmp_path / "jwks.json"))), key


def test_api_keys_and_jwt_guard_their_routes(secured: tuple[str, Any]) -> None:
    gateway, key = secured
    good = key.sign(claims(scope="orders.read"))
    narrow = key.sign(claims(scope="profile"))
    # WHEN the guarded routes are asked with and without credentials
    no_key = httpx.get(f"{gateway}/admin")
    with_key = httpx.get(f"{gateway}/admin", headers={"x-api-key": API_KEY})
    no_token = httpx.get(f"{gateway}/api/orders")
    token = httpx.get(f"{gateway}/api/orders", headers={"authorization": f"Bearer {good}"})
    scope = httpx.get(f"{gateway}/api/orders", headers={"authorization": f"Bearer {narrow}"})
    # THEN missing or wrong credentials are 401, too little scope 403, good ones pass
    assert no_key.status_code == 401 and no_key.json()["error"] == "unauthorized"
    assert with_key.status_code == 200
    assert no_token.status_code == 401 and no_token.headers["www-authenticate"].startswith("Bearer")
    assert token.status_code == 200
    assert scope.status_code == 403 and "insufficient_scope" in scope.headers["www-authenticate"]
    assert good not in no_token.text + scope.text


@pytest.mark.parametrize(
    "spelling",
    [
        "/api/../admin",
        "/%61dmin",
        "/ADMIN/../admin",
        "//admin",
        "/./admin/.",
        "/public/%2e%2e/admin",
    ],
    ids=["dot-dot", "escaped-letter", "case-then-dots", "double-slash", "dot", "escaped-dots"],
)
def test_no_spelling_of_a_path_bypasses_its_route(secured: tuple[str, Any], spelling: str) -> None:
    gateway, _ = secured
    # WHEN the protected path is spelled another way
    response = httpx.get(f"{gateway}{spelling}")
    # THEN it still lands on the protected route
    assert response.status_code == 401
    assert response.headers["x-gateway-route"] == "admin"


@pytest.mark.parametrize(
    "spelling", ["/admin%2f..", "/admin%2F", "/a%5cb", "/%2e%2e/admin"], ids=str
)
def test_encoded_slashes_and_escapes_above_root_are_refused(
    secured: tuple[str, Any], spelling: str
) -> None:
    gateway, _ = secured
    response = httpx.get(f"{gateway}{spelling}")
    assert response.status_code == 400 and response.json()["error"] == "bad_path"


def test_request_limits_and_client_sent_gateway_headers(
    start_gateway: GatewayFactory, legacy_url: str
) -> None:
    # GIVEN a route with small limits
    gateway = start_gateway(
        f"""
targets: {{legacy: {{url: "{legacy_url}"}}}}
routes:
  - name: all
    path: /
    target: legacy
    limits: {{max_body: 1KB, max_url: 200, max_headers: 20, max_header_bytes: 2KiB}}
"""
    )
    # WHEN requests go over each limit, and one carries x-gateway-* headers
    long_url = httpx.get(f"{gateway}/echo/" + "a" * 300)
    many = httpx.get(f"{gateway}/echo/x", headers=[(f"x-h{i}", "v") for i in range(30)])
    big = httpx.get(f"{gateway}/echo/x", headers={"x-big": "v" * 3000})
    body = httpx.post(f"{gateway}/echo/x", content=b"b" * 2000)
    streamed = httpx.post(f"{gateway}/echo/x", content=iter([b"b" * 600, b"b" * 600]))
    spoof = httpx.get(f"{gateway}/echo/x", headers={"x-gateway-route": "admin"})
    # THEN each gets its status, and the spoofed header never reaches the upstream
    assert long_url.status_code == 414
    assert many.status_code == 431 and big.status_code == 431
    assert body.status_code == 413
    assert streamed.status_code == 413
    assert "x-gateway-route" not in [name for name, _ in spoof.json()["headers"]]
