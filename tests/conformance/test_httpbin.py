"""httpbin straight versus through the gateway, byte for byte, under both uvicorn parsers.

The same raw request goes to httpbin (gunicorn on loopback) and to a gateway in front of it;
status, interim statuses, every header with its repeats and byte values, and the body must
be the same, or differ only as a row of the README's documented-deviation table says.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.app import create_app
from tests.conformance.deviations import require_documented
from tests.conformance.httpbin_kit import compare, httpbin_server
from tests.support.rawhttp import build, request
from tests.support.servers import serve_in_thread, write_config

HOST = ("Host", "conformance.test")
BINARY = bytes(range(256)) * 4


@dataclass(frozen=True, slots=True)
class Case:
    raw: bytes
    head: bool = False
    body_chunks: list[bytes] = field(default_factory=list)
    chunk_pause: float = 0.0


def _get(target: str, *headers: tuple[str | bytes, str | bytes]) -> Case:
    return Case(build("GET", target, [HOST, *headers]))


CASES = {
    "anything-binary-body": Case(
        build(
            "POST",
            "/anything?x=%41",
            [HOST, ("Content-Type", "application/octet-stream"), ("Content-Length", "1024")],
            BINARY,
        )
    ),
    "anything-chunked-body": Case(
        build("PUT", "/anything", [HOST, ("Transfer-Encoding", "chunked")]),
        body_chunks=[b"5\r\nhello\r\n", b"6\r\n world\r\n", b"0\r\n\r\n"],
        chunk_pause=0.05,
    ),
    "headers-latin1-value": _get("/headers", ("X-Latin", b"caf\xe9"), ("X-Utf8", b"caf\xc3\xa9")),
    "cookies-set-two": _get("/cookies/set?a=1&b=2"),
    "response-headers-repeated": _get(
        "/response-headers?X-Dup=one&X-Dup=two&Link=%3C%2Fa%3E&Link=%3C%2Fb%3E"
    ),
    "redirect-to": _get("/redirect-to?url=%2Fget%3Fq%3D1&status_code=307"),
    "status-418": _get("/status/418"),
    "gzip": _get("/gzip"),
    "stream-5": _get("/stream/5"),
    "stream-bytes-2MB": _get("/stream-bytes/2000000?seed=7&chunk_size=65536"),
    "drip": _get("/drip?duration=0.3&numbytes=3&code=200&delay=0"),
    "head": Case(build("HEAD", "/html", [HOST]), head=True),
    "options": Case(build("OPTIONS", "/get", [HOST])),
    "patch": Case(
        build("PATCH", "/patch", [HOST, ("Content-Type", "text/plain"), ("Content-Length", "2")])
        + b"hi"
    ),
    "unknown-method": Case(build("FROBNICATE", "/anything", [HOST])),
    "expect-100-continue": Case(
        build("POST", "/anything", [HOST, ("Content-Length", "5"), ("Expect", "100-continue")]),
        body_chunks=[b"hello"],
        chunk_pause=0.2,
    ),
    "http-1.0-client": Case(build("GET", "/get", [HOST], version="HTTP/1.0")),
}


@pytest.fixture(scope="module")
def httpbin_url() -> Iterator[str]:
    with httpbin_server() as url:
        yield url


@dataclass(frozen=True, slots=True)
class Gateway:
    parser: str
    url: str


@pytest.fixture(scope="module", params=["httptools", "h11"], ids=["httptools", "h11"])
def gateway(
    request: pytest.FixtureRequest, httpbin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    table = f"""
targets:
  httpbin: {{url: "{httpbin_url}", timeout: 10s}}
routes:
  - {{name: httpbin, path: /, target: httpbin}}
"""
    path = write_config(Path(tmp_path_factory.mktemp("httpbin")), table)
    with serve_in_thread(create_app(path), http=request.param) as url:
        yield Gateway(request.param, url)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_straight_and_through_the_gateway_are_the_same(
    case: Case, httpbin_url: str, gateway: Gateway
) -> None:
    # GIVEN httpbin, and a gateway whose one route sends everything to it
    # WHEN the same bytes go straight to httpbin and through the gateway
    straight, through = (
        request(
            url,
            case.raw,
            head=case.head,
            body_chunks=case.body_chunks,
            chunk_pause=case.chunk_pause,
        )
        for url in (httpbin_url, gateway.url)
    )
    # THEN the answers are the same, but for differences the README documents
    if gateway.parser == "httptools" and case.raw.startswith(b"FROBNICATE "):
        assert (straight.status, through.status) == (405, 400)
        require_documented("httptools-refuses-unknown-methods", "uvicorn's 400 under httptools")
        return
    differences = compare(straight, through)
    for deviation_id, detail in differences.found.items():
        require_documented(deviation_id, detail)
