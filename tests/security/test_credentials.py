"""Item 3: a request with two credential headers is refused, never half-checked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.admission.auth import hash_api_key
from tests.security.admission_kit import (
    PARSERS,
    alb_event,
    answer_body,
    echoed_headers,
    send,
    serve_table,
    values,
)
from tests.support import jwt_kit
from tests.support.lambda_runner import lambda_process
from tests.support.servers import write_config

KEY = "the-real-key"
SIGNER = jwt_kit.ec_key("k1")


def table(upstream: str) -> str:
    return f"""
targets:
  legacy: {{url: "{upstream}"}}
routes:
  - name: keyed
    path: /echo/keyed
    target: legacy
    auth: {{api_keys: {{header: X-Api-Key, keys: ["{hash_api_key(KEY)}"]}}}}
  - name: bearer
    path: /echo/bearer
    target: legacy
    auth: {{jwt: {{issuer: "{jwt_kit.ISSUER}", jwks_file: jwks.json}}}}
"""


def write_table(tmp_path: Path, upstream: str) -> str:
    (tmp_path / "jwks.json").write_text(json.dumps(jwt_kit.jwks(SIGNER)))
    return write_config(tmp_path, table(upstream))


def bearer() -> str:
    return "Bearer " + SIGNER.sign(jwt_kit.claims())


FORGED_JWT = "Bearer " + jwt_kit.forge(
    {"alg": "none", "kid": "k1"}, jwt_kit.claims(sub="admin"), hmac_secret=None
)

DUPLICATES = [
    pytest.param("/echo/keyed", "X-Api-Key", "forged", KEY, id="api-key-forged-first"),
    pytest.param("/echo/keyed", "X-Api-Key", KEY, "forged", id="api-key-forged-last"),
    pytest.param("/echo/keyed", "x-api-key", KEY, KEY, id="api-key-same-twice"),
    pytest.param("/echo/bearer", "Authorization", FORGED_JWT, None, id="jwt-forged-first"),
]


@pytest.fixture(scope="module", params=PARSERS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, echo_upstream: str
) -> Iterator[str]:
    """Routes protected by an API key and by a JWT, under each parser."""
    directory = tmp_path_factory.mktemp("credentials")
    write_table(directory, echo_upstream)
    with serve_table(directory, table(echo_upstream), request.param) as url:
        yield url


@pytest.mark.parametrize(("path", "header", "first", "second"), DUPLICATES)
def test_two_credential_headers_are_refused(
    gateway: str, path: str, header: str, first: str, second: str | None
) -> None:
    # GIVEN routes protected by an API key and by a JWT
    # WHEN a client sends the credential header twice (one of them valid)
    last = second if second is not None else bearer()
    answer = send(gateway, "GET", path, [(header, first), (header.upper(), last)])

    # THEN it is refused with a JSON 401 naming the problem, and nothing reached the upstream
    assert answer.status == 401
    assert answer.header("content-type") == b"application/json"
    found = json.loads(answer.body)
    assert found["error"] == "unauthorized"
    assert "more than one" in found["message"]


def test_the_checked_credential_is_the_one_forwarded(gateway: str) -> None:
    # GIVEN a JWT-protected route
    token = bearer()
    # WHEN a client sends one valid token
    answer = send(gateway, "GET", "/echo/bearer", [("Authorization", token)])

    # THEN the upstream receives exactly that one credential
    assert answer.status == 200
    assert values(echoed_headers(answer.body), "authorization") == [token]


def test_two_credentials_through_lambda(tmp_path: Path, echo_upstream: str) -> None:
    # GIVEN the Lambda entry on the same table
    config = write_table(tmp_path, echo_upstream)
    headers = {"x-api-key": ["forged", KEY], "x-forwarded-for": ["203.0.113.9"]}
    with lambda_process(config) as handler:
        # WHEN an ALB multi-value event carries the API key twice
        answer = handler.invoke(alb_event("/echo/keyed", headers))

    # THEN it is a JSON 401, not a forwarded request
    assert answer["statusCode"] == 401
    assert "more than one" in json.loads(answer_body(answer))["message"]
