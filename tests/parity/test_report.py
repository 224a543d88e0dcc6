"""What `GET /_gateway/parity` and `gateway parity` show, and what they never show."""

from __future__ import annotations

import json

from gateway.parity.compare import Answer
from gateway.parity.evidence import EvidenceLog, redact_text, request_line
from gateway.parity.recorder import Pair, Recorder
from gateway.parity.report import parity_report, render_text
from gateway.parity.spec import CompareSpec, ShadowSpec
from tests.parity.services import drops_status, legacy, run

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"
SECRETS = [
    "abc123token",
    "zzzaccess",
    "hunter2",
    "sess=supersecret",
    JWT,
    "Bearer xyz-secret",
    "locationkey",
]


def _leaky_pair() -> Pair:
    headers = (
        (b"content-type", b"application/json"),
        (b"set-cookie", b"sess=supersecret"),
        (b"authorization", b"Bearer xyz-secret"),
        (b"location", b"/next?page=3&api_key=locationkey"),
    )
    one = {"user": {"password": "hunter2", "session": JWT, "name": "alice"}}
    two = {"user": {"password": "other", "session": "none", "name": "bob"}}
    line = request_line("GET", "/api/orders", "token=abc123token&page=2&access_token=zzzaccess")
    return Pair(
        line,
        Answer(200, headers, json.dumps(one).encode()),
        Answer(200, headers[:1], json.dumps(two).encode()),
    )


def test_no_secret_reaches_the_json_or_the_text() -> None:
    # GIVEN pairs whose query, cookies, authorization and bodies carry secrets that differ
    spec = ShadowSpec(
        "v2",
        compare=CompareSpec(
            headers=("content-type", "set-cookie", "authorization", "location"), min_compared=1
        ),
    )
    recorder = Recorder()
    for i in range(3):
        recorder.pair("orders", spec, _leaky_pair(), float(i))
    # WHEN the report is read as JSON and as text
    report = parity_report(recorder, {"orders": spec.compare}, 10.0)
    shown = json.dumps(report) + render_text(report)
    # THEN every differing path is listed, and no secret value appears
    paths = {row["path"] for row in report["routes"][0]["paths"]}
    assert {
        "header.set-cookie",
        "header.authorization",
        "body.user.password",
        "body.user.session",
        "body.user.name",
    } <= paths
    for secret in SECRETS:
        assert secret not in shown, secret
    assert "page=2" in shown and "page=3" in shown and "alice" in shown


def test_redaction_of_text_catches_jwts_and_secret_keys() -> None:
    # GIVEN text holding a JWT and secret-named JSON keys WHEN redacted THEN both are replaced
    text = f'{{"token": "t0k", "api_key": 42, "note": "{JWT}", "name": "x"}}'
    assert redact_text(text) == (
        '{"token": "REDACTED", "api_key": "REDACTED", "note": "REDACTED", "name": "x"}'
    )


def test_examples_are_few_recent_and_bounded() -> None:
    # GIVEN a log keeping 3 examples of at most 4 paths
    evidence = EvidenceLog(examples=3, max_paths=4)
    recorder = Recorder(evidence=evidence)
    spec = ShadowSpec("v2")
    # WHEN 10 pairs differ at 10 new paths and 10 more at one path
    for i in range(10):
        one = Answer(200, (), json.dumps({f"f{i}": 1}).encode())
        two = Answer(200, (), json.dumps({f"f{i}": 2}).encode())
        recorder.pair("orders", spec, Pair(f"GET /{i}", one, two), float(i))
    for i in range(10):
        one = Answer(200, (), json.dumps({"f9": i}).encode())
        two = Answer(200, (), json.dumps({"f9": -i - 1}).encode())
        recorder.pair("orders", spec, Pair(f"GET /again/{i}", one, two), 10.0 + i)
    # THEN the oldest paths are gone and the kept path holds its 3 latest examples
    assert evidence.recent("orders", "body.f0") == []
    assert [e.request for e in evidence.recent("orders", "body.f9")] == [
        "GET /again/7",
        "GET /again/8",
        "GET /again/9",
    ]


def test_the_text_puts_the_score_first_and_real_paths_before_noise() -> None:
    # GIVEN a candidate that drops a field, stamps differing on both sides
    recorder = Recorder()
    spec = ShadowSpec("v2")
    run(recorder, spec, drops_status, 2000)
    # WHEN rendered
    text = render_text(parity_report(recorder, {"orders": spec.compare}, 200.0))
    lines = text.splitlines()
    # THEN the score line is first, then the counts, then an aligned table, worst path first
    assert lines[0].startswith("orders  parity 0.00% over 15m")
    assert lines[1].split()[:2] == ["compared", "2000"]
    header, first, *rest = lines[2:]
    assert first.split()[:2] == ["body.status", "missing"]
    assert "real" in first and all("noise" in line for line in rest)
    assert first.index("missing") == header.index("KIND")


def test_a_route_before_min_compared_shows_why_it_has_no_score() -> None:
    # GIVEN 10 pairs of identical services WHEN reported as JSON and text
    recorder = Recorder()
    spec = ShadowSpec("v2")
    run(recorder, spec, legacy, 10)
    report = parity_report(
        recorder, {"orders": spec.compare, "users": spec.compare}, 1.0, route="orders"
    )
    # THEN the score is null with its reason, and the text says so too
    [entry] = report["routes"]
    assert (entry["score"], entry["reason"]) == (None, "10 of 50 pairs compared")
    assert "parity — over 15m (10 of 50 pairs compared)" in render_text(report)
