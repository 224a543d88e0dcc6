"""The dashboard's rates: per second over the seconds its minute buckets actually cover."""

from __future__ import annotations

import pytest

from gateway.config.load import load_text
from gateway.migration.dashboard import dashboard

TABLE = """
targets:
  legacy: {url: "http://127.0.0.1:1"}
  orders-v2: {url: "http://127.0.0.1:2"}
routes:
  - name: orders
    path: /api/orders
    split: {legacy: 90, orders-v2: 10}
"""


@pytest.mark.parametrize(
    ("span", "expected"),
    [(60.0, 1.5), (90.0, 1.0), (119.0, 0.76)],
    ids=["minute-turned", "half-past", "minute-nearly-done"],
)
def test_a_rate_is_the_requests_over_the_seconds_the_buckets_cover(
    span: float, expected: float
) -> None:
    # GIVEN 90 requests to the legacy in the last full minute and the one under way
    config = load_text(TABLE, "routes.yaml")
    recent = [{"route": "orders", "target": "legacy", "requests": 90.0, "error_rate": 0.0}]
    # WHEN the page's numbers are made with the span those buckets cover
    page = dashboard(config, recent, [], None, span)
    # THEN the rate is per second of that span, not of one minute
    [view] = page["routes"]
    assert view["targets"]["legacy"]["rps"] == expected
    assert view["targets"]["orders-v2"]["rps"] == 0.0
