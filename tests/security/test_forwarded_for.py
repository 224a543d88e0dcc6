"""Item 9: only the X-Forwarded-For chain trusted proxies vouch for reaches the upstream."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.deviations import require_documented
from tests.security.admission_kit import (
    PARSERS,
    alb_event,
    answer_body,
    echoed_headers,
    send,
    serve_table,
    values,
)
from tests.support.lambda_runner import lambda_process
from tests.support.servers import write_config


def table(upstream: str, trusted: str = "") -> str:
    return f"""
{trusted}
targets:
  legacy: {{url: "{upstream}"}}
routes:
  - {{name: echo, path: /echo, target: legacy}}
"""


CASES = [
    pytest.param(
        "", [("X-Forwarded-For", "6.6.6.6, 1.2.3.4")], "127.0.0.1", id="untrusted-peer-one-header"
    ),
    pytest.param(
        "",
        [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "1.2.3.4")],
        "127.0.0.1",
        id="untrusted-peer-two-headers",
    ),
    pytest.param(
        "trusted_proxies: [127.0.0.1, 10.0.0.0/8]",
        [("X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.1.2.3")],
        "203.0.113.9, 10.1.2.3, 127.0.0.1",
        id="trusted-chain-cut-at-first-untrusted",
    ),
    pytest.param(
        "trusted_proxies: [127.0.0.1]",
        [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "not-an-ip, 203.0.113.9")],
        "203.0.113.9, 127.0.0.1",
        id="trusted-two-headers-garbage-left",
    ),
]


@pytest.mark.parametrize("http", PARSERS)
@pytest.mark.parametrize(("trusted", "sent", "expected"), CASES)
def test_upstream_sees_only_the_vouched_chain(  # noqa: PLR0917 (fixtures and parameters)
    tmp_path: Path,
    echo_upstream: str,
    http: str,
    trusted: str,
    sent: list[tuple[str, str]],
    expected: str,
) -> None:
    # GIVEN a gateway in front of an echoing upstream, with or without trusted proxies
    with serve_table(tmp_path, table(echo_upstream, trusted), http) as url:
        # WHEN a client on loopback sends forged X-Forwarded-For entries
        answer = send(url, "GET", "/echo/x", sent)

    # THEN the upstream gets one X-Forwarded-For: the vouched entries, then the peer
    # (not the client's header with the peer appended, as nginx and the ALB do)
    assert answer.status == 200
    assert values(echoed_headers(answer.body), "x-forwarded-for") == [expected]
    require_documented("xff-vouched-chain-only", f"{sent} -> {expected}")


def test_lambda_upstream_sees_only_the_alb_client(tmp_path: Path, echo_upstream: str) -> None:
    # GIVEN the Lambda entry with no trusted proxies
    config = write_config(tmp_path, table(echo_upstream))
    # AND an ALB event whose client forged entries left of the one the ALB appended
    event = alb_event("/echo/x", {"x-forwarded-for": ["6.6.6.6, 198.51.100.7"]})
    with lambda_process(config) as handler:
        # WHEN it is forwarded
        answer = handler.invoke(event)

    # THEN the upstream sees just the client the ALB saw
    assert answer["statusCode"] == 200
    got = values(echoed_headers(answer_body(answer)), "x-forwarded-for")
    assert got == ["198.51.100.7"]


def test_lambda_trusted_chain(tmp_path: Path, echo_upstream: str) -> None:
    # GIVEN the Lambda entry trusting a CDN range in front of the ALB
    config = write_config(tmp_path, table(echo_upstream, "trusted_proxies: [198.51.100.0/24]"))
    event = alb_event("/echo/x", {"x-forwarded-for": ["6.6.6.6, 203.0.113.9, 198.51.100.7"]})
    with lambda_process(config) as handler:
        # WHEN a request comes through the CDN, with a forged entry on the left
        answer = handler.invoke(event)

    # THEN the upstream sees the client the CDN vouched for, then the CDN
    got = values(echoed_headers(answer_body(answer)), "x-forwarded-for")
    assert got == ["203.0.113.9, 198.51.100.7"]
