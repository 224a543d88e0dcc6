"""Item 5: the /_gateway admin API answers only who the `admin:` block (or loopback) admits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.admission.auth import hash_api_key
from gateway.cli.main import main
from gateway.config.load import parse_config
from gateway.config.model import ConfigError
from gateway.rollouts.metrics import PrometheusSource
from tests.security.admission_kit import (
    PARSERS,
    alb_event,
    answer_body,
    send,
    serve_table,
)
from tests.support.lambda_runner import lambda_process
from tests.support.servers import write_config

ADMIN_KEY = "admin-secret"
SECRET_URL = "http://10.20.30.40:8080"  # an internal address that must never leak
ADMIN_PATHS = [
    pytest.param(path, id=path.rsplit("/", 1)[-1])
    for path in (
        "/_gateway/routes",
        "/_gateway/metrics",
        "/_gateway/docs",
        "/_gateway/openapi.json",
        "/_gateway/explain",
        "/_gateway/routes/",
    )
] + [
    pytest.param("/_gateway/", id="dashboard"),
    pytest.param("/_gateway/dashboard.json", id="dashboard-json"),
    pytest.param("/_gateway/recent", id="recent"),
]


def table(admin: str = "", trusted: str = "trusted_proxies: [127.0.0.1]") -> str:
    return f"""
{trusted}
{admin}
targets:
  internal: {{url: "{SECRET_URL}"}}
routes:
  - {{name: app, path: /app, target: internal}}
"""


KEYED = f"""
admin:
  api_keys: {{header: x-admin-key, keys: ["{hash_api_key(ADMIN_KEY)}"]}}
"""


def assert_refused(status: int, body: bytes, expected: int) -> None:
    assert status == expected
    found = json.loads(body)
    assert found["error"] == ("forbidden" if expected == 403 else "unauthorized")
    assert b"10.20.30.40" not in body and b"routes" not in body.lower()


@pytest.fixture(scope="module", params=PARSERS)
def default_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A gateway with no admin block behind a trusted local proxy, under each parser."""
    with serve_table(tmp_path_factory.mktemp("admin"), table(), request.param) as url:
        yield url


@pytest.fixture(scope="module", params=PARSERS)
def keyed_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A gateway whose admin block wants a key (x-admin-key), under each parser."""
    with serve_table(tmp_path_factory.mktemp("admin"), table(KEYED), request.param) as url:
        yield url


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_without_admin_block_only_loopback_clients(default_gateway: str, path: str) -> None:
    # GIVEN no admin block, behind a trusted local proxy
    url = default_gateway
    # WHEN a remote client (as the proxy vouches) asks for an admin endpoint
    answer = send(url, "GET", path, [("X-Forwarded-For", "203.0.113.9")])
    # AND a client on loopback asks for the route table
    local = send(url, "GET", "/_gateway/routes", [])

    # THEN the remote client gets a JSON 403 that says nothing of the topology
    assert_refused(answer.status, answer.body, 403)
    # AND loopback still reads it
    assert local.status == 200
    assert SECRET_URL in local.body.decode()


def test_health_stays_open_and_shows_nothing_else(keyed_gateway: str) -> None:
    # GIVEN a gateway refusing remote admin clients without the key
    # WHEN a remote client without any credential checks health
    answer = send(keyed_gateway, "GET", "/_gateway/health", [("X-Forwarded-For", "203.0.113.9")])

    # THEN it gets exactly {"status": "ok"}
    assert answer.status == 200
    assert json.loads(answer.body) == {"status": "ok"}


KEY_CASES = [
    pytest.param([], 401, id="no-key"),
    pytest.param([("X-Admin-Key", "guess")], 401, id="wrong-key"),
    pytest.param([("X-Admin-Key", ADMIN_KEY), ("X-Admin-Key", "x")], 401, id="two-keys"),
    pytest.param([("X-Admin-Key", ADMIN_KEY)], 200, id="the-key"),
]


@pytest.mark.parametrize(("headers", "status"), KEY_CASES)
def test_admin_api_key(keyed_gateway: str, headers: list[tuple[str, str]], status: int) -> None:
    # GIVEN an admin block with an API key (and so no address restriction)
    # WHEN a remote client reads the route table (two failures in all: under max_failures)
    answer = send(
        keyed_gateway, "GET", "/_gateway/routes", [("X-Forwarded-For", "203.0.113.9"), *headers]
    )

    # THEN only the right key, sent once, opens it
    if status == 200:
        assert answer.status == 200 and SECRET_URL in answer.body.decode()
    else:
        assert_refused(answer.status, answer.body, status)


NETWORK_CASES = [
    pytest.param([("X-Forwarded-For", "10.1.2.3")], 200, id="inside"),
    pytest.param([("X-Forwarded-For", "203.0.113.9")], 403, id="outside"),
    pytest.param([("X-Forwarded-For", "10.1.2.3, 203.0.113.9")], 403, id="forged-inside"),
    pytest.param([], 403, id="loopback-not-listed"),
]


@pytest.mark.parametrize(("headers", "status"), NETWORK_CASES)
def test_admin_networks(tmp_path: Path, headers: list[tuple[str, str]], status: int) -> None:
    # GIVEN an admin block opening the API to 10.0.0.0/8 only
    admin = "admin: {networks: [10.0.0.0/8]}"
    with serve_table(tmp_path, table(admin), "h11") as url:
        # WHEN clients from various (vouched) addresses read the metrics
        answer = send(url, "GET", "/_gateway/metrics", headers)

    # THEN only the listed network gets in
    if status == 200:
        assert answer.status == 200
    else:
        assert_refused(answer.status, answer.body, status)


def test_lambda_admin_is_closed_health_open(tmp_path: Path) -> None:
    # GIVEN the Lambda entry with no admin block (the peer is the ALB's client)
    config = write_config(tmp_path, table(trusted=""))
    client = {"x-forwarded-for": ["203.0.113.9"]}
    with lambda_process(config) as handler:
        # WHEN an internet client asks for the route table, the docs and health
        routes = handler.invoke(alb_event("/_gateway/routes", client))
        docs = handler.invoke(alb_event("/_gateway/openapi.json", client))
        health = handler.invoke(alb_event("/_gateway/health", client))

    # THEN the admin endpoints are refused and health answers
    assert_refused(routes["statusCode"], answer_body(routes), 403)
    assert_refused(docs["statusCode"], answer_body(docs), 403)
    assert health["statusCode"] == 200
    assert json.loads(answer_body(health)) == {"status": "ok"}


def test_lambda_admin_with_key(tmp_path: Path) -> None:
    # GIVEN the Lambda entry with an admin key
    config = write_config(tmp_path, table(KEYED, trusted=""))
    headers = {"x-forwarded-for": ["203.0.113.9"], "x-admin-key": [ADMIN_KEY]}
    with lambda_process(config) as handler:
        # WHEN the operator reads the route table with the key
        answer = handler.invoke(alb_event("/_gateway/routes", headers))

    # THEN it is served
    assert answer["statusCode"] == 200
    assert SECRET_URL in answer_body(answer).decode()


BAD_BLOCKS = [
    pytest.param("admin: {}", "admin", id="empty"),
    pytest.param("admin: {networks: [10.0.0.1/8]}", "admin.networks", id="host-bits"),
    pytest.param("admin: {networks: []}", "admin.networks", id="no-networks"),
    pytest.param("admin: {api_keys: {keys: [plain]}}", "admin.api_keys.keys", id="plain-key"),
    pytest.param("admin: {netwerks: [10.0.0.0/8]}", "admin", id="unknown-key"),
    pytest.param("admin: [10.0.0.0/8]", "config.admin", id="not-a-mapping"),
]


@pytest.mark.parametrize(("block", "where"), BAD_BLOCKS)
def test_bad_admin_blocks_are_problems_with_lines(block: str, where: str) -> None:
    # GIVEN a table with a broken admin block on line 3
    text = table(block, trusted="")
    # WHEN it is loaded
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "routes.yaml")

    # THEN the problem names the field and its line, and nothing is half-applied
    problems = [p for p in caught.value.problems if p.where.startswith(where)]
    assert problems, caught.value
    assert problems[0].line == 3


def test_cli_verbs_send_the_admin_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a gateway whose admin API wants a key (in the default header, x-api-key)
    keyed = f'admin: {{api_keys: {{keys: ["{hash_api_key(ADMIN_KEY)}"]}}}}'
    monkeypatch.delenv("GATEWAY_ADMIN_KEY", raising=False)
    monkeypatch.delenv("GATEWAY_ADMIN_HEADER", raising=False)
    with serve_table(tmp_path, table(keyed, trusted="")) as url:
        # WHEN `gateway status` runs without, then with the key
        without = main(["status", url])
        refused = capsys.readouterr().err
        flagged = main(["status", url, "--admin-key", ADMIN_KEY])
        # AND the rollout metrics source scrapes with the key from the environment
        monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN_KEY)
        scraped = PrometheusSource(url).scrape()

    # THEN only the runs with the key read the gateway
    assert without == 1 and "401" in refused
    assert flagged == 0
    assert isinstance(scraped, dict)
