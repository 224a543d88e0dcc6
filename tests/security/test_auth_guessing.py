"""Item 11: a client whose credentials keep failing is refused before they are checked."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.admission.auth import hash_api_key
from gateway.admission.guard import FailureCounter, TooManyAuthFailures
from gateway.admission.ratelimit import RateLimiter
from gateway.config.load import parse_config
from gateway.config.model import ConfigError, RateSpec
from tests.security.admission_kit import (
    PARSERS,
    alb_event,
    answer_body,
    send,
    serve_table,
)
from tests.support.lambda_runner import lambda_process
from tests.support.rawhttp import RawResponse
from tests.support.servers import write_config

KEY = "right-key"
ATTACKER = "203.0.113.66"
BYSTANDER = "198.51.100.7"


def table(upstream: str, max_failures: str = "max_failures: 3/h") -> str:
    return f"""
trusted_proxies: [127.0.0.1]
targets:
  legacy: {{url: "{upstream}"}}
routes:
  - name: keyed
    path: /echo/keyed
    target: legacy
    auth:
      api_keys: {{keys: ["{hash_api_key(KEY)}"]}}
      {max_failures}
"""


def keyed(url: str, client: str, key: str | None) -> RawResponse:
    headers = [("X-Forwarded-For", client)] + ([("X-Api-Key", key)] if key else [])
    return send(url, "GET", "/echo/keyed", headers)


@pytest.mark.parametrize("http", PARSERS)
def test_guessing_client_is_blocked_even_with_the_right_key(
    tmp_path: Path, echo_upstream: str, http: str
) -> None:
    # GIVEN a route allowing 3 failed authentications an hour per client
    with serve_table(tmp_path, table(echo_upstream), http) as url:
        # WHEN one client guesses 3 times, and then guesses right
        guesses = [keyed(url, ATTACKER, f"guess-{n}").status for n in range(3)]
        found = keyed(url, ATTACKER, KEY)
        # AND another client, with the right key, comes along
        bystander = keyed(url, BYSTANDER, KEY)

    # THEN the guesses are 401s, the right key after them a JSON 429 with Retry-After
    assert guesses == [401, 401, 401]
    assert found.status == 429
    assert json.loads(found.body)["error"] == "too_many_auth_failures"
    retry_after = found.header("retry-after")
    assert retry_after is not None and int(retry_after) >= 1
    # AND the other client is not blocked by the first one's failures
    assert bystander.status == 200


def test_on_by_default_and_missing_keys_do_not_count(tmp_path: Path, echo_upstream: str) -> None:
    # GIVEN a keyed route that does not mention max_failures (the default: 10/m)
    with serve_table(tmp_path, table(echo_upstream, max_failures="")) as url:
        # WHEN a client sends 12 requests without any key, then the right key
        missing = {keyed(url, BYSTANDER, None).status for _ in range(12)}
        allowed = keyed(url, BYSTANDER, KEY)
        # AND another client sends 11 wrong keys
        wrong = [keyed(url, ATTACKER, "guess").status for _ in range(11)]

    # THEN no key is not a guess; the 11th wrong key is refused as guessing
    assert missing == {401}
    assert allowed.status == 200
    assert wrong == [401] * 10 + [429]


def test_off_counts_nothing(tmp_path: Path, echo_upstream: str) -> None:
    # GIVEN a route with max_failures: off
    with serve_table(tmp_path, table(echo_upstream, "max_failures: off")) as url:
        # WHEN a client sends 12 wrong keys, then the right one
        wrong = {keyed(url, ATTACKER, "guess").status for _ in range(12)}
        right = keyed(url, ATTACKER, KEY)

    # THEN each is judged on its own
    assert wrong == {401}
    assert right.status == 200


def test_guessing_through_lambda(tmp_path: Path, echo_upstream: str) -> None:
    # GIVEN the Lambda entry (warm: one interpreter keeps the counts)
    config = write_config(tmp_path, table(echo_upstream))

    def event(client: str, key: str) -> dict[str, object]:
        return alb_event("/echo/keyed", {"x-forwarded-for": [client], "x-api-key": [key]})

    with lambda_process(config) as handler:
        # WHEN one client guesses 3 times and then sends the right key
        guesses = [handler.invoke(event(ATTACKER, "guess"))["statusCode"] for _ in range(3)]
        blocked = handler.invoke(event(ATTACKER, KEY))
        other = handler.invoke(event(BYSTANDER, KEY))

    # THEN it is blocked with a JSON 429, and another client is not
    assert guesses == [401, 401, 401]
    assert blocked["statusCode"] == 429
    assert json.loads(answer_body(blocked))["error"] == "too_many_auth_failures"
    assert other["statusCode"] == 200


def test_admin_key_guessing_is_counted_too(tmp_path: Path, echo_upstream: str) -> None:
    # GIVEN an admin block with a key, allowing 2 failures an hour
    admin = f'admin: {{api_keys: {{keys: ["{hash_api_key(KEY)}"]}}, max_failures: 2/h}}\n'
    with serve_table(tmp_path, admin + table(echo_upstream)) as url:

        def routes(key: str) -> int:
            headers = [("X-Forwarded-For", ATTACKER), ("X-Api-Key", key)]
            return send(url, "GET", "/_gateway/routes", headers).status

        # WHEN a client guesses twice, then sends the right key
        statuses = [routes("a"), routes("b"), routes(KEY)]

    # THEN the right key is refused after the guesses
    assert statuses == [401, 401, 429]


def test_the_block_ends_when_a_failure_has_drained() -> None:
    # GIVEN a counter of 2 failures a minute on a clock the test moves
    now = [0.0]
    counter = FailureCounter(RateLimiter(2 / 60, 2, clock=lambda: now[0]))
    counter.failed("a")
    counter.failed("a")

    async def tries() -> None:
        # WHEN the client tries again at once, and 30 s later
        with pytest.raises(TooManyAuthFailures) as blocked:
            await counter.refuse_if_blocked("a")
        now[0] = 30.0
        await counter.refuse_if_blocked("a")
        # THEN it was told to wait 30 s, and after them it may try once more
        assert blocked.value.retry_after == 30
        await counter.refuse_if_blocked("b")

    asyncio.run(tries())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("5/m", RateSpec(5 / 60, 5), id="per-minute"),
        pytest.param("off", None, id="off"),
        pytest.param("false", None, id="false"),
    ],
)
def test_max_failures_values(value: str, expected: RateSpec | None) -> None:
    # GIVEN a route's auth with max_failures
    text = table("http://127.0.0.1:9", f"max_failures: {value}")
    # WHEN it is loaded
    [route] = parse_config(text, "routes.yaml").routes
    # THEN the counter is as written
    assert route.auth_failures == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("0/m", id="zero"),
        pytest.param("2.5/m", id="fraction"),
        pytest.param("lots", id="words"),
    ],
)
def test_bad_max_failures_is_a_problem_with_a_line(value: str) -> None:
    # GIVEN a route's auth with a broken max_failures on line 11
    text = table("http://127.0.0.1:9", f"max_failures: {value}")
    # WHEN it is loaded
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "routes.yaml")
    # THEN the problem names the field and its line
    [problem] = caught.value.problems
    assert problem.where.endswith("auth.max_failures")
    assert problem.line == 11
