"""The state: block: refused with a problem per field, GATEWAY_REDIS_URL over the file."""

from __future__ import annotations

import pytest

from gateway.config.model import StateSettings
from gateway.config.state import parse_state

NO_ENV: dict[str, str] = {}


def test_no_state_block_means_per_process_limits() -> None:
    # GIVEN a table without state:  WHEN it is parsed  THEN no settings and no problems
    assert parse_state(None, NO_ENV) == (None, [])


def test_a_full_block_is_read_with_its_units() -> None:
    # GIVEN every key written
    block = {"redis": "rediss://cache:6379/0", "prefix": "gw:prod:", "timeout": "20ms"}
    # WHEN it is parsed
    settings, problems = parse_state({**block, "on_unavailable": "closed"}, NO_ENV)
    # THEN all are kept, the timeout in seconds
    assert problems == []
    assert settings == StateSettings("rediss://cache:6379/0", "gw:prod:", 0.02, "closed")


def test_defaults_are_gw_prefix_50ms_and_local() -> None:
    # GIVEN only the URL  WHEN parsed  THEN the documented defaults
    settings, _ = parse_state({"redis": "redis://127.0.0.1:6379/0"}, NO_ENV)
    assert settings == StateSettings("redis://127.0.0.1:6379/0", "gw:", 0.05, "local")


def test_the_environment_overrides_the_file() -> None:
    # GIVEN a URL in the file and another in GATEWAY_REDIS_URL
    environ = {"GATEWAY_REDIS_URL": "redis://elsewhere:6380/1"}
    # WHEN parsed  THEN the environment's wins
    settings, _ = parse_state({"redis": "redis://127.0.0.1:6379/0"}, environ)
    assert settings is not None
    assert settings.redis == "redis://elsewhere:6380/1"


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"redis": "http://127.0.0.1:6379"}, "redis"),
        ({"redis": "redis://"}, "redis"),
        ({"redis": "redis://host:99999"}, "redis"),
        ({}, "redis"),
        ({"redis": "redis://h", "timeout": "-50ms"}, "timeout"),
        ({"redis": "redis://h", "timeout": -1}, "timeout"),
        ({"redis": "redis://h", "timeout": 0}, "timeout"),
        ({"redis": "redis://h", "timeout": "soon"}, "timeout"),
        ({"redis": "redis://h", "on_unavailable": "open"}, "on_unavailable"),
        ({"redis": "redis://h", "prefix": 7}, "prefix"),
        ({"redis": "redis://h", "redis_url": "redis://h"}, "redis_url"),
    ],
    ids=[
        "http-scheme",
        "no-host",
        "bad-port",
        "no-url",
        "negative-timeout",
        "negative-number",
        "zero-timeout",
        "not-a-duration",
        "unknown-on-unavailable",
        "prefix-not-text",
        "unknown-key",
    ],
)
def test_a_bad_block_is_refused_naming_the_field(block: dict[str, object], field: str) -> None:
    # GIVEN a state: block with one mistake  WHEN parsed
    settings, problems = parse_state(block, NO_ENV)
    # THEN no settings, and a problem naming the field for the loader to locate
    assert settings is None
    assert [name for name, _ in problems] == [field]
