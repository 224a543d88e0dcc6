"""httpbin (PyPI `httpbin`, ISC licence) under gunicorn on loopback, and the comparison of one
raw request sent straight to it and through the gateway.

`compare` returns every difference between the two answers, each named by the id of its row
in the README's documented-deviation table; the test then calls `require_documented` for each,
so a difference nobody documented fails the build.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.rawhttp import RawResponse
from tests.support.servers import LOOPBACK, free_port, serve_process

# Headers the gateway adds to every answer by design (README: "What comes back").
GATEWAY_ADDED = (b"x-gateway-route", b"x-gateway-target")
# Request headers the gateway sets or rewrites by design, as httpbin echoes them back.
FORWARDING_FIELDS = ("Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host")
TRACE_FIELDS = ("Traceparent", "X-Amzn-Trace-Id")


@contextmanager
def httpbin_server() -> Iterator[str]:
    """httpbin under gunicorn (threaded worker: keep-alive, and /drip does not block the rest),
    stopped by PID when the block ends."""
    port = free_port()
    argv = [
        "-m",
        "gunicorn",
        "--bind",
        f"{LOOPBACK}:{port}",
        "--worker-class",
        "gthread",
        "--workers",
        "1",
        "--threads",
        "8",
        "--log-level",
        "warning",
        "httpbin:app",
    ]
    with serve_process(argv, port, env={"PYTHONWARNINGS": "ignore"}, timeout=30.0):
        yield f"http://{LOOPBACK}:{port}"


@dataclass(slots=True)
class Differences:
    """What differs, by deviation id, with a detail to show when the id is not documented."""

    found: dict[str, str] = field(default_factory=dict)

    def add(self, deviation_id: str, detail: str) -> None:
        self.found.setdefault(deviation_id, detail)


def _names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name for name, _ in headers]


def _without(headers: list[tuple[bytes, bytes]], *names: bytes) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name.lower() not in names]


def compare(straight: RawResponse, through: RawResponse) -> Differences:
    """Every difference between httpbin's own answer and the gateway's, by deviation id.

    A difference with no id (status, interim statuses, a header value, an unexplained body
    byte) is raised at once as an AssertionError: it is a defect, not a deviation."""
    diffs = Differences()
    assert through.status == straight.status, (straight.status, through.status)
    assert through.interim == straight.interim, (straight.interim, through.interim)
    if through.version != straight.version:
        assert (straight.version, through.version) == (b"HTTP/1.0", b"HTTP/1.1")
        diffs.add("http10-answered-as-http11", "uvicorn's status line says HTTP/1.1")
    ours = through.headers
    if any(name.lower() in GATEWAY_ADDED for name, _ in ours):
        diffs.add("gateway-route-target-headers", f"{_names(ours)}")
        ours = _without(ours, *GATEWAY_ADDED)
    theirs = straight.headers
    assert len(straight.all("date")) == len(through.all("date")), (
        f"Date headers: {straight.all('date')} straight, {through.all('date')} through"
    )
    if straight.all("date") != through.all("date"):
        diffs.add("date-value-by-time", "Date values differ (the two answers are not at once)")
    ours, theirs = _without(ours, b"date"), _without(theirs, b"date")
    same_body = _compare_bodies(straight, through, diffs)
    if not same_body:
        # A body that differs by documented echo fields has its own length.
        for answer in (straight, through):
            length = answer.header("content-length")
            assert length is None or int(length) == len(answer.body)
        ours, theirs = _without(ours, b"content-length"), _without(theirs, b"content-length")
    ours, theirs = _framing(ours, theirs, diffs)
    lower = [n.lower() for n in _names(ours)] == [n.lower() for n in _names(theirs)]
    if lower and _names(ours) != _names(theirs):
        diffs.add("header-names-lower-case", f"{_names(theirs)} -> {_names(ours)}")
    assert [(n.lower(), v) for n, v in ours] == [(n.lower(), v) for n, v in theirs], (
        f"headers differ:\nstraight {theirs}\nthrough  {ours}"
    )
    return diffs


FRAMING = (b"connection", b"transfer-encoding")


def _framing(
    ours: list[tuple[bytes, bytes]], theirs: list[tuple[bytes, bytes]], diffs: Differences
) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """Hop-by-hop headers describe one connection: the gateway's connection to the client is
    uvicorn's (its keep-alive, its chunking), not httpbin's to the gateway."""
    for name in FRAMING:
        theirs_values = [v.lower() for n, v in theirs if n.lower() == name]
        ours_values = [v.lower() for n, v in ours if n.lower() == name]
        if theirs_values == ours_values:
            if theirs_values and _position(ours, name) != _position(theirs, name):
                diffs.add("framing-headers-last", f"{name!r} written last by uvicorn")
        elif name == b"connection" and not ours_values:
            diffs.add("hop-by-hop-connection-header", f"httpbin's Connection: {theirs_values}")
        else:
            raise AssertionError(f"{name!r}: {theirs_values} straight, {ours_values} through")
    return _without(ours, *FRAMING), _without(theirs, *FRAMING)


def _position(headers: list[tuple[bytes, bytes]], name: bytes) -> int:
    return [n.lower() for n, _ in headers].index(name)


def _compare_bodies(straight: RawResponse, through: RawResponse, diffs: Differences) -> bool:
    if straight.body == through.body:
        return True
    encoded = (straight.header("content-encoding") or b"").lower() == b"gzip"
    mine = gzip.decompress(straight.body) if encoded else straight.body
    yours = gzip.decompress(through.body) if encoded else through.body
    if encoded:
        diffs.add("gzip-echo-recompressed", "the gzip body echoes other request fields")
    mine_docs, yours_docs = _json_documents(mine), _json_documents(yours)
    assert mine_docs is not None, f"bodies differ and are not httpbin JSON: {mine[:200]!r}"
    assert yours_docs is not None, f"bodies differ and are not JSON: {yours[:200]!r}"
    assert len(mine_docs) == len(yours_docs)
    for theirs_doc, ours_doc in zip(mine_docs, yours_docs, strict=True):
        _compare_echo(theirs_doc, ours_doc, diffs)
    return False


def _json_documents(body: bytes) -> list[Any] | None:
    """httpbin's JSON answer, or its /stream/N answer (one JSON document a line)."""
    try:
        return [json.loads(body)]
    except ValueError:
        pass
    try:
        return [json.loads(line) for line in body.splitlines() if line.strip()]
    except ValueError:
        return None


def _compare_echo(theirs: Any, ours: Any, diffs: Differences) -> None:
    """httpbin echoes the request: the fields the gateway sets by design may differ."""
    assert isinstance(theirs, dict) and isinstance(ours, dict), (theirs, ours)
    theirs, ours = dict(theirs), dict(ours)
    theirs_headers = dict(theirs.pop("headers", {}))
    ours_headers = dict(ours.pop("headers", {}))
    for name in FORWARDING_FIELDS:
        if theirs_headers.get(name) != ours_headers.get(name):
            diffs.add("httpbin-echo-forwarding-fields", f"{name}: {ours_headers.get(name)!r}")
        theirs_headers.pop(name, None)
        ours_headers.pop(name, None)
    for names, deviation_id in (
        (TRACE_FIELDS, "httpbin-echo-trace-headers"),
        (("Expect",), "expect-not-forwarded"),
    ):
        for name in names:
            if theirs_headers.get(name) != ours_headers.get(name):
                diffs.add(deviation_id, f"{name}: {ours_headers.get(name)!r}")
            theirs_headers.pop(name, None)
            ours_headers.pop(name, None)
    assert ours_headers == theirs_headers, f"echoed headers differ: {theirs_headers} {ours_headers}"
    for key, deviation_id in (("origin", "httpbin-echo-origin"), ("url", "httpbin-echo-url-host")):
        if theirs.get(key) != ours.get(key):
            diffs.add(deviation_id, f"{key} {theirs.get(key)!r} -> {ours.get(key)!r}")
        theirs.pop(key, None)
        ours.pop(key, None)
    assert ours == theirs, f"echoed fields differ:\nstraight {theirs}\nthrough  {ours}"
