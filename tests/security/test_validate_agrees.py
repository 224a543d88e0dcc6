"""`gateway validate` and the gateway itself agree on every tricky table: validate accepts
it exactly when the gateway starts on it and serves; what validate refuses, the gateway refuses
with the same ConfigError, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.config.model import ConfigError
from legacy_stub.app import create_app as legacy_app
from tests.support.jwt_kit import ISSUER, rsa_key
from tests.support.servers import ROOT, serve_in_thread

GOOD_JWKS = {"keys": [rsa_key("good").public_jwk()]}
ODD_ONLY_JWKS = {"keys": [{"kid": "odd", "kty": "RSA", "alg": "none", "n": "AQAB", "e": "AQAB"}]}
ODD_AND_GOOD_JWKS = {"keys": [*ODD_ONLY_JWKS["keys"], *GOOD_JWKS["keys"]]}


def jwt(source: str, scopes: str = "[orders.read]") -> str:
    return f"auth: {{jwt: {{issuer: '{ISSUER}', {source}, scopes: {scopes}}}}}"


# Each case: (route lines, target lines, top-level lines); every case is one table.
CORPUS: dict[str, tuple[str, str, str]] = {
    "plain": ("", "", ""),
    "rate-zero": ("rate: 0/s", "", ""),
    "rate-tiny": ("rate: 1/h", "", ""),
    "rate-huge": ("rate: 99999999999999999999/s", "", ""),
    "burst-zero": ("rate: 10/s\n    burst: 0", "", ""),
    "trusted-host-bits": ("", "", "trusted_proxies: [10.0.0.1/8]"),
    "trusted-network": ("", "", "trusted_proxies: [10.0.0.0/8, 127.0.0.1, '::1']"),
    "trusted-padded": ("", "", "trusted_proxies: [' 10.0.0.0/8']"),
    "trusted-v6-prefix-too-long": ("", "", "trusted_proxies: ['::1/129']"),
    "jwks-file-missing": (jwt("jwks_file: missing.json"), "", ""),
    "jwks-file-odd-only": (jwt("jwks_file: odd-only.json"), "", ""),
    "jwks-file-odd-and-good": (jwt("jwks_file: odd-and-good.json"), "", ""),
    "jwks-file-not-json": (jwt("jwks_file: routes.yaml"), "", ""),
    "jwks-url-plain-http": (jwt("jwks_url: 'http://keys.example.com/jwks.json'"), "", ""),
    "jwks-url-loopback-http": (jwt("jwks_url: 'http://127.0.0.1:1/jwks.json'"), "", ""),
    "jwks-url-not-a-url": (jwt("jwks_url: 'keys'"), "", ""),
    "jwt-scope-with-space": (jwt("jwks_file: good.json", "['orders read']"), "", ""),
    "jwt-scope-with-quote": (jwt("jwks_file: good.json", "['orders\"read']"), "", ""),
    "jwt-scope-empty": (jwt("jwks_file: good.json", "['']"), "", ""),
    "api-key-header-with-space": (
        "auth: {api_keys: {header: 'x api key', keys: ['sha256:" + "0" * 64 + "']}}", "", ""
    ),
    "url-non-ascii-host": ("", "", "targets:\n  other: {url: 'http://exämple.com'}"),
    "url-non-ascii-path": ("", "", "targets:\n  other: {url: 'http://127.0.0.1:1/é'}"),
    "url-port-too-big": ("", "", "targets:\n  other: {url: 'http://127.0.0.1:99999'}"),
    "url-userinfo": ("", "", "targets:\n  other: {url: 'http://u:p@127.0.0.1:1'}"),
    "timeout-enormous": ("", "timeout: 99999999999999h", ""),
    "timeout-tiny": ("", "timeout: 0.001ms", ""),
    "max-concurrency-zero": ("", "max_concurrency: 0", ""),
    "max-concurrency-huge": ("", "max_concurrency: 99999999999999999999", ""),
    "queue-timeout-enormous": ("", "max_concurrency: 2\n    queue_timeout: 99999999999h", ""),
    "retry-attempts-huge": ("", "retry: {attempts: 1000000}", ""),
    "breaker-window-enormous": ("", "breaker: {window: 99999999999999h}", ""),
    "limits-zero": ("limits: {max_body: 0, max_url: 0, max_header_bytes: 0}", "", ""),
    "path-non-ascii": ("", "", "routes_extra: /é"),
    "header-value-non-latin1": ("headers: {x-lang: 'é€'}", "", ""),
    "rewrite-non-ascii": ("rewrite: /ü", "", ""),
    "lambda-bad-region": ("", "", "targets:\n  fn: {lambda: orders, region: 'not a region!'}"),
    "lambda-endpoint": ("", "", "targets:\n  fn: {lambda: orders, endpoint_url: 'http://127.0.0.1:1'}"),
}  # fmt: skip
# What the gateway would accept but must not: refused by both, not merely agreed on.
MUST_REFUSE = frozenset({
    "rate-zero", "burst-zero", "trusted-host-bits", "trusted-v6-prefix-too-long",
    "jwks-file-missing", "jwks-file-odd-only", "jwks-file-not-json", "jwks-url-plain-http",
    "jwks-url-not-a-url", "jwt-scope-with-space", "jwt-scope-with-quote", "jwt-scope-empty",
    "api-key-header-with-space", "url-non-ascii-host", "url-non-ascii-path", "url-port-too-big",
    "max-concurrency-zero", "path-non-ascii", "rewrite-non-ascii",
})  # fmt: skip
CASES = [pytest.param(case, name in MUST_REFUSE, id=name) for name, case in CORPUS.items()]


def table(legacy: str, route: str, target: str, top: str) -> str:
    extra_targets = ""
    path = "/"
    if top.startswith("targets:"):
        extra_targets = top.removeprefix("targets:")
        top = ""
    if top.startswith("routes_extra: "):
        path = "/echo/" + top.removeprefix("routes_extra: /")
        top = ""
    target_lines = f"\n    {target}" if target else ""
    route_lines = f"\n    {route}" if route else ""
    return (
        f"{top}\ntargets:\n  legacy:\n    url: '{legacy}'{target_lines}{extra_targets}\n"
        f"routes:\n  - name: r\n    path: {path}\n    target: legacy{route_lines}\n"
    )


@pytest.fixture(scope="module")
def legacy() -> Iterator[str]:
    with serve_in_thread(legacy_app()) as url:
        yield url


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def gateway_serves(path: Path) -> tuple[bool, str]:
    """(started and answered without a 500, why not); a ConfigError is a clean refusal."""
    try:
        app = create_app(str(path))
    except ConfigError as refusal:
        return False, str(refusal)
    with serve_in_thread(app) as url:
        answer = httpx.get(f"{url}/echo/é", timeout=10)
    return answer.status_code != 500, f"{answer.status_code} {answer.text[:200]}"


@pytest.mark.parametrize(("case", "must_refuse"), CASES)
def test_validate_accepts_exactly_what_the_gateway_serves(
    legacy: str, tmp_path: Path, case: tuple[str, str, str], must_refuse: bool
) -> None:
    # GIVEN a tricky table beside its JWKS files
    for name, document in (
        ("good.json", GOOD_JWKS),
        ("odd-only.json", ODD_ONLY_JWKS),
        ("odd-and-good.json", ODD_AND_GOOD_JWKS),
    ):
        (tmp_path / name).write_text(json.dumps(document))
    path = tmp_path / "routes.yaml"
    path.write_text(table(legacy, *case))
    # WHEN `gateway validate` judges it and a real gateway starts on it
    judged = validate(path)
    served, why = gateway_serves(path)
    # THEN both agree, and a refusal is a list of problems with file and line, no traceback
    assert "Traceback" not in judged.stderr
    assert (judged.returncode == 0) == served, (judged.stdout + judged.stderr, why)
    if judged.returncode != 0:
        assert f"{path}:" in judged.stderr
    assert judged.returncode == (1 if must_refuse else 0), judged.stderr


def test_uvicorn_on_a_refused_table_lists_the_problems_and_exits_1(
    legacy: str, tmp_path: Path
) -> None:
    # GIVEN a table validate refuses (a zero rate)
    path = tmp_path / "routes.yaml"
    path.write_text(table(legacy, *CORPUS["rate-zero"]))
    # WHEN `uvicorn gateway.app:app` is started on it
    started = subprocess.run(
        [sys.executable, "-m", "uvicorn", "gateway.app:app", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "GATEWAY_CONFIG": str(path)},
        check=False,
    )
    judged = validate(path)
    # THEN it exits 1 listing the same problems as validate, without a traceback
    assert started.returncode == 1
    assert "Traceback" not in started.stderr
    assert judged.stderr.strip() in started.stderr
