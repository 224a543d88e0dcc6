"""The protection choices of issue 10: what opens a breaker, and rate buckets on reload."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.config.load import parse_config
from gateway.config.model import BreakerPolicy, ConfigError
from tests.conformance.deviations import require_documented
from tests.security.admission_kit import send, serve_table
from tests.support.servers import serve_in_thread, write_config


def breaker_table(upstream: str, count: str) -> str:
    return f"""
targets:
  legacy: {{url: "{upstream}", breaker: {{consecutive_failures: 5{count}}}}}
routes:
  - {{name: stub, path: /_stub, target: legacy}}
"""


@pytest.mark.parametrize(
    ("count", "after"),
    [
        pytest.param("", 200, id="default-gateway-errors"),
        pytest.param(", count: gateway_errors", 200, id="gateway-errors"),
        pytest.param(", count: 5xx", 503, id="5xx"),
    ],
)
def test_one_client_and_its_500s(
    tmp_path: Path, echo_upstream: str, count: str, after: int
) -> None:
    # GIVEN a target whose breaker opens after 5 consecutive failures
    with serve_table(tmp_path, breaker_table(echo_upstream, count)) as url:
        # WHEN one client makes the upstream answer 500 six times
        provoked = [send(url, "GET", "/_stub/status/500", []).status for _ in range(6)]
        # AND then anyone asks for something that works
        other = send(url, "GET", "/_stub/status/200", [])

    # THEN the 500s pass through; only with count: 5xx is the target shut for everyone
    assert provoked[:5] == [500] * 5
    assert other.status == after
    if after == 200:
        require_documented("breaker-counts-gateway-errors", f"500 x6 with {count or 'default'}")
    if after == 503:
        assert json.loads(other.body)["error"] == "circuit_open"


@pytest.mark.parametrize(
    ("count", "status", "failed"),
    [
        pytest.param("gateway_errors", 500, False, id="gw-500"),
        pytest.param("gateway_errors", 502, True, id="gw-502"),
        pytest.param("gateway_errors", 503, True, id="gw-503"),
        pytest.param("gateway_errors", 504, True, id="gw-504"),
        pytest.param("gateway_errors", 501, False, id="gw-501"),
        pytest.param("5xx", 500, True, id="5xx-500"),
        pytest.param("5xx", 429, False, id="5xx-429"),
    ],
)
def test_what_counts_as_a_failure(count: str, status: int, failed: bool) -> None:
    # GIVEN a breaker policy counting `count`
    policy = BreakerPolicy(count=count)  # type: ignore[arg-type]
    # WHEN an upstream answers `status` THEN it counts as a failure or not
    assert policy.failed(status) is failed


def test_a_bad_count_is_a_problem_with_a_line() -> None:
    # GIVEN a breaker counting something unknown
    text = breaker_table("http://127.0.0.1:9", ", count: 4xx")
    # WHEN the table is loaded THEN the problem names the field
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "routes.yaml")
    [problem] = caught.value.problems
    assert problem.where.endswith("breaker.count") and problem.line == 3


def rate_table(upstream: str, weight: int, rate: str = "2/h") -> str:
    return f"""
targets:
  a: {{url: "{upstream}"}}
  b: {{url: "{upstream}"}}
routes:
  - name: limited
    path: /echo
    split: {{a: {weight}, b: {100 - weight}}}
    rate: {rate}
    burst: 2
"""


def version(url: str) -> str:
    found: str = json.loads(send(url, "GET", "/_gateway/routes", []).body)["version"]
    return found


def reload_to(url: str, path: Path, text: str) -> None:
    """Write the table and wait (bounded) until the gateway serves it."""
    before = version(url)
    path.write_text(text)
    deadline = time.monotonic() + 15
    while version(url) == before:
        assert time.monotonic() < deadline, "the gateway did not reload in time"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("new_rate", "after"),
    [
        pytest.param("2/h", 429, id="shift-keeps-the-bucket"),
        pytest.param("3/h", 200, id="new-rate-new-bucket"),
    ],
)
def test_rate_buckets_survive_a_shift(
    tmp_path: Path,
    echo_upstream: str,
    monkeypatch: pytest.MonkeyPatch,
    new_rate: str,
    after: int,
) -> None:
    # GIVEN a rate-limited route, re-read every 0.1 s
    monkeypatch.setenv("GATEWAY_CONFIG_TTL", "0.1")
    path = Path(write_config(tmp_path, rate_table(echo_upstream, 90)))
    with serve_in_thread(create_app(str(path))) as url:
        # WHEN a client spends its burst
        spent = [send(url, "GET", "/echo/x", []).status for _ in range(3)]
        # AND the route's weights are shifted (the file rewritten, the table reloaded)
        reload_to(url, path, rate_table(echo_upstream, 50, new_rate))
        again = send(url, "GET", "/echo/x", [])

    # THEN the bucket is still empty after the shift; a changed rate starts afresh
    assert spent == [200, 200, 429]
    assert again.status == after
