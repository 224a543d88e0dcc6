"""The runtime's one StateStore: built from `state:`, kept by a reload that leaves it unchanged,
replaced (and the old one retired) by one that changes it; local or fleet chosen per target."""

from __future__ import annotations

import pytest

from gateway.admission.ratelimit import RateLimiter
from gateway.config.load import parse_config
from gateway.fleet.breaker import FleetBreaker
from gateway.fleet.concurrency import FleetConcurrencyLimit
from gateway.fleet.rate import FleetRateLimiter
from gateway.protection.concurrency import ConcurrencyLimit
from gateway.reload import rebuild
from gateway.runtime import build_runtime

TABLE = """\
{state}
targets:
  legacy: {{url: "http://127.0.0.1:9", max_concurrency: 5}}
  new: {{url: "http://127.0.0.1:10", breaker: off}}
routes:
  - {{name: orders, path: /orders, split: {{legacy: {weight}, new: {rest}}}, rate: 10/s}}
"""
STATE = 'state: {redis: "redis://127.0.0.1:1/0", timeout: %s}'


def table(state: str = STATE % "50ms", weight: int = 90) -> str:
    return TABLE.format(state=state, weight=weight, rest=100 - weight)


@pytest.fixture(autouse=True)
def _no_url_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_REDIS_URL", raising=False)


def test_state_makes_the_limits_the_fleets_and_none_stays_local() -> None:
    # GIVEN the same table with and without state:
    fleet = build_runtime(parse_config(table(), "fleet.yaml"))
    local = build_runtime(parse_config(table(state=""), "local.yaml"))

    # THEN with it the limit, breaker and rate are the fleet's; without, the process's
    assert fleet.store is not None and local.store is None
    assert isinstance(fleet.guards["legacy"].limit, FleetConcurrencyLimit)
    assert isinstance(fleet.guards["legacy"].breaker, FleetBreaker)
    assert isinstance(fleet.admissions["orders"].rate, FleetRateLimiter)
    assert fleet.guards["new"].breaker is None and fleet.guards["new"].limit is None
    assert isinstance(local.guards["legacy"].limit, ConcurrencyLimit)
    assert isinstance(local.admissions["orders"].rate, RateLimiter)


def test_a_reload_keeps_the_store_and_what_did_not_change() -> None:
    # GIVEN a runtime with state:
    first = build_runtime(parse_config(table(), "a.yaml"))

    # WHEN a shift changes only a weight
    second, retired = rebuild(first, parse_config(table(weight=80), "a.yaml"))

    # THEN the store, the target guards and the route's rate are the same objects
    assert second.store is first.store
    assert second.guards["legacy"] is first.guards["legacy"]
    assert second.admissions["orders"].rate is first.admissions["orders"].rate
    assert first.store not in retired


def test_a_changed_state_block_brings_a_new_store_and_retires_the_old() -> None:
    # GIVEN a runtime with state:
    first = build_runtime(parse_config(table(), "a.yaml"))

    # WHEN the state: block changes (another timeout)
    second, retired = rebuild(first, parse_config(table(state=STATE % "80ms"), "a.yaml"))

    # THEN a new store serves, the old one is retired (closed after the grace period), and
    # the limits are rebuilt on the new one
    assert second.store is not None and second.store is not first.store
    assert second.store.timeout == pytest.approx(0.08)
    assert first.store in retired
    assert second.guards["legacy"] is not first.guards["legacy"]
