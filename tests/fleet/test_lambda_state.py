"""The Lambda entry with `state:`: its Redis use reaches CloudWatch as EMF, as nothing can
scrape a Lambda environment's /_gateway/metrics."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fleet.fleet_kit import SlowUpstream
from tests.support.lambda_kit import alb_event
from tests.support.lambda_runner import lambda_process
from tests.support.servers import serve_in_thread, write_config

TABLE = """\
state: {{redis: "{redis}", timeout: 1s}}
targets:
  up: {{url: "{up}", max_concurrency: 5, breaker: off}}
routes:
  - {{name: limited, path: /, target: up, rate: 100/s, burst: 100}}
"""


def test_each_invocation_reports_its_round_trips_as_emf(tmp_path: Path, redis_url: str) -> None:
    # GIVEN a Lambda environment on a route with a fleet-wide rate and limit, its log kept
    log = tmp_path / "lambda.log"
    with serve_in_thread(SlowUpstream(), lifespan="off") as up:
        config = write_config(tmp_path, TABLE.format(redis=redis_url, up=up))
        env = {"GATEWAY_ACCESS_LOG": "on", "AWS_LAMBDA_FUNCTION_NAME": "gateway"}
        with lambda_process(config, env, log=log) as function:
            # WHEN it answers two requests
            answers = [function.invoke(alb_event("GET", "/x"))["statusCode"] for _ in range(2)]
    records = [json.loads(line) for line in log.read_text().splitlines() if "StateRound" in line]
    # THEN each invocation wrote one EMF line: the rate check, the acquire and the release
    # (sent before the handler returned) in 3 round trips, none unavailable
    assert answers == [200, 200]
    assert [(r["StateRoundTrips"], r["StateUnavailable"]) for r in records] == [(3, 0), (3, 0)]
    assert all(r["StateLatency"] > 0 for r in records)
    [directive] = records[0]["_aws"]["CloudWatchMetrics"]
    assert (directive["Dimensions"], records[0]["function"]) == ([["function"]], "gateway")
    assert {m["Name"] for m in directive["Metrics"]} == {
        "StateRoundTrips",
        "StateUnavailable",
        "StateLatency",
    }
