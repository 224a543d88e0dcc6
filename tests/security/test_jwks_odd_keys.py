"""One odd entry in a JWKS (`alg: none`, a key type we do not use, a missing modulus) is
skipped: valid tokens still pass, the refetch floor holds, and a `jwks_file` still starts."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from legacy_stub.app import create_app as legacy_app
from tests.support.gateways import GatewayFactory
from tests.support.jwt_kit import ISSUER, JwksServer, claims, rsa_key
from tests.support.servers import serve_in_thread

KEY = rsa_key("good")
ODD_ENTRIES = {
    "alg-none": {"kid": "odd", "kty": "RSA", "alg": "none", "n": "AQAB", "e": "AQAB"},
    "kty-oct": {"kid": "odd", "kty": "oct", "alg": "HS256"},
    "kty-okp": {"kid": "odd", "kty": "OKP", "crv": "Ed448", "x": "AA"},
    "rsa-without-n": {"kid": "odd", "kty": "RSA", "alg": "RS256", "e": "AQAB"},
    "alg-a-list": {"kid": "odd", "kty": "RSA", "alg": ["RS256"]},
    "not-an-object": "odd",
}

pytestmark = pytest.mark.usefixtures("close_the_import_time_event_loop")


@pytest.fixture(scope="module")
def legacy() -> Iterator[str]:
    with serve_in_thread(legacy_app()) as url:
        yield url


def table(legacy: str, jwt_source: str) -> str:
    return f"""
targets:
  legacy: {{url: "{legacy}"}}
routes:
  - name: orders
    path: /echo/orders
    target: legacy
    auth:
      jwt: {{issuer: "{ISSUER}", {jwt_source}}}
"""


def odd_document(odd: Any) -> dict[str, Any]:
    return {"keys": [odd, KEY.public_jwk()]}


@pytest.mark.parametrize("odd", ODD_ENTRIES.values(), ids=ODD_ENTRIES.keys())
def test_an_odd_jwks_url_entry_leaves_valid_tokens_working_and_the_floor_held(
    start_gateway: GatewayFactory, legacy: str, odd: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a JWKS served on loopback holding one odd entry beside the real signing key
    jwks = JwksServer(odd_document(odd))
    with serve_in_thread(jwks, lifespan="off") as jwks_url:
        gateway = start_gateway(table(legacy, f'jwks_url: "{jwks_url}/jwks.json"'))
        token = KEY.sign(claims())
        stranger = rsa_key("stranger").sign(claims())
        with caplog.at_level(logging.WARNING, logger="gateway.auth"):
            # WHEN valid tokens come, then tokens naming a kid the set does not hold
            valid = [
                httpx.get(f"{gateway}/echo/orders", headers={"authorization": f"Bearer {token}"})
                for _ in range(3)
            ]
            unknown = [
                httpx.get(f"{gateway}/echo/orders", headers={"authorization": f"Bearer {stranger}"})
                for _ in range(3)
            ]
    # THEN every valid token passes, the unknown kid is a 401, and the set was fetched once
    assert [r.status_code for r in valid] == [200, 200, 200]
    assert [r.status_code for r in unknown] == [401, 401, 401]
    assert jwks.fetches == 1
    skipped = [r for r in caplog.records if "skipped unusable key" in r.getMessage()]
    assert len(skipped) == 1


@pytest.mark.parametrize("odd", ODD_ENTRIES.values(), ids=ODD_ENTRIES.keys())
def test_an_odd_jwks_file_entry_does_not_stop_the_gateway(
    start_gateway: GatewayFactory, legacy: str, odd: Any, tmp_path: Path
) -> None:
    # GIVEN a jwks_file holding one odd entry beside the real signing key
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(odd_document(odd)))
    # WHEN the gateway starts on it and a valid token comes
    gateway = start_gateway(table(legacy, f'jwks_file: "{jwks_file}"'))
    token = KEY.sign(claims())
    answer = httpx.get(f"{gateway}/echo/orders", headers={"authorization": f"Bearer {token}"})
    # THEN the gateway serves it
    assert answer.status_code == 200
    assert answer.json()["method"] == "GET"
