"""The path normal form against RFC 3986, WHATWG URL and Envoy vectors; and `gateway explain`
(from a file and from a running gateway) against the running gateway on every path of them.

Each vector's outcome is the reference's path, a refusal the README promises (400
`bad_path`), or a row of the README's documented-deviation table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from gateway.app import create_app
from gateway.cli.main import main
from tests.conformance.deviations import require_documented
from tests.conformance.path_vectors import Vector, classify, corpus, vector_id
from tests.support.rawhttp import RawResponse
from tests.support.rawhttp import request as send
from tests.support.servers import serve_in_thread, write_config

CORPUS = corpus()


@pytest.mark.parametrize("vector", CORPUS, ids=[vector_id(v) for v in CORPUS])
def test_gateway_path_is_the_references_or_documented(vector: Vector) -> None:
    # GIVEN a third-party vector: a path as sent, and the reference's path for it
    # WHEN the gateway puts the path in its normal form (the proxy's own function)
    outcome = classify(vector)

    # THEN it is the reference's path, a promised refusal, or a documented deviation
    detail = f"{vector.origin}: gateway {outcome.got!r}, reference {vector.expected!r}"
    assert outcome.kind != "unexplained", detail
    if outcome.deviation is not None:
        require_documented(outcome.deviation, detail)


@pytest.mark.parametrize(
    ("source", "least"),
    [
        pytest.param("rfc3986", 35, id="rfc3986"),
        pytest.param("whatwg-url", 40, id="whatwg-url"),
        pytest.param("envoy", 30, id="envoy"),
    ],
)
def test_every_source_is_run_and_mostly_matched(source: str, least: int) -> None:
    # GIVEN the vectors of one source
    vectors = [v for v in CORPUS if v.source == source]

    # WHEN each is classified
    kinds = Counter(classify(v).kind for v in vectors)

    # THEN the sample is whole (no selection silently emptied it) and nothing is unexplained
    assert len(vectors) >= least, kinds
    assert kinds["unexplained"] == 0, kinds
    assert kinds["matched"] > kinds["deviation"], kinds


TABLE = """
targets:
  stub: {{url: "{upstream}"}}
routes:
  - {{name: b-c, path: /b/c, target: stub}}
  - {{name: a, path: /a, target: stub}}
  - {{name: foo, path: /foo, target: stub}}
  - {{name: orders, path: /api/orders, methods: [GET], target: stub}}
  - {{name: everything-else, path: /, target: stub}}
"""
# Spellings of the reserved prefix, beside the third-party paths.
RESERVED = (b"/_gateway/health", b"//_gateway/health", b"/x/../_gateway/routes", b"/%5Fgateway/x")
PATHS = sorted({v.raw for v in CORPUS} | set(RESERVED))


@pytest.fixture(scope="module", params=["httptools", "h11"])
def running(
    request: pytest.FixtureRequest, legacy_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    config = write_config(tmp_path_factory.mktemp("paths"), TABLE.format(upstream=legacy_url))
    with serve_in_thread(create_app(config), http=request.param) as url:
        yield config, url


def explained(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    """(what explain printed, the outcome it names: a route, refused or not routed)."""
    main(["explain", *args])
    # (the running gateway's JSON access-log lines share this process's stdout)
    out = "".join(
        line for line in capsys.readouterr().out.splitlines(keepends=True) if line[:1] != "{"
    )
    first = out.splitlines()[0]
    if " -> route '" in first:
        return out, "route " + first.split(" -> route '", 1)[1].split("'", 1)[0]
    return out, "refused" if ": refused, the gateway answers 400" in first else "not routed"


def served(answer: RawResponse) -> str:
    route = answer.header("x-gateway-route")
    if route is not None:
        return "route " + route.decode()
    return "refused" if answer.status == 400 else "not routed"


def test_explain_and_the_running_gateway_agree_on_every_path(
    running: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, url = running
    disagreements = []
    for raw in PATHS:
        # GIVEN a path of the corpus, as a client sends it
        target = raw.decode("utf-8")

        # WHEN explain is asked from the file and from the running gateway, and the gateway
        # is sent the very request
        from_file, says = explained(capsys, config, "GET", target)
        from_gateway, _ = explained(capsys, "--url", url, "GET", target)
        answer = send(url, b"GET " + raw + b" HTTP/1.1\r\nHost: gateway\r\n\r\n", timeout=5)

        # THEN all three agree
        if from_file != from_gateway or says != served(answer):
            disagreements.append((raw, says, served(answer), answer.status, from_gateway))
    assert disagreements == []
    assert len(PATHS) > 100
