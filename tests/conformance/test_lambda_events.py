"""Recorded AWS events through the Lambda entry: Powertools' `tests/events` and the output
of `sam local generate-event` (see each vendor folder's SOURCE.md), replayed through
`handler` in a fresh interpreter against an echo upstream on loopback.

Each event must reach the upstream as it promises (method, raw path, query, headers with
their repeats, body, client once in X-Forwarded-For, scheme), and the answer must come back
in the event's own shape (ALB single or multi-value headers, or HTTP API), status and body
encoding included. A difference is either fixed or a documented deviation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.deviations import require_documented
from tests.conformance.lambda_replay import answer_shape, differences, sent
from tests.support.lambda_kit import answer_body, echoed, lambda_entry
from tests.support.lambda_runner import LambdaProcess

VENDOR = Path(__file__).parent / "vendor"
RECORDED = sorted(
    path
    for source in ("powertools", "sam")
    for path in (VENDOR / source).glob("*.json")
    if not path.name.startswith("rest-api")
)


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaProcess]:
    with lambda_entry(tmp_path_factory.mktemp("recorded")) as process:
        yield process


def load(path: Path) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return event


@pytest.mark.parametrize(
    "path", RECORDED, ids=[f"{path.parent.name}/{path.stem}" for path in RECORDED]
)
def test_a_recorded_event_reaches_the_upstream_as_it_promises(
    entry: LambdaProcess, path: Path
) -> None:
    # GIVEN an event recorded by a third party
    event = load(path)
    # WHEN the handler serves it in front of the echo upstream
    answer = entry.invoke(event)
    # THEN the answer has the event's shape, and the upstream got what the event carried
    answer_shape(event, answer)
    assert answer["isBase64Encoded"] is False  # the echo answers application/json text
    for deviation in differences(sent(event), echoed(answer)):
        require_documented(deviation, f"{path.name}: the proxy rewrites forwarding headers")


def test_a_rest_api_event_is_still_served_through_mangum(entry: LambdaProcess) -> None:
    # GIVEN `sam local generate-event apigateway aws-proxy` (a REST API, payload 1.0)
    event = load(VENDOR / "sam" / "rest-api-aws-proxy.json")
    # WHEN the handler serves it
    answer = entry.invoke(event)
    # THEN it reaches the upstream with its method, path and body
    received = json.loads(answer_body(answer))
    assert answer["statusCode"] == 200
    assert received["method"] == event["httpMethod"]
    assert received["raw_path"] == event["path"]
