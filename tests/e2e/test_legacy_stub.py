import base64
import gzip
import hashlib
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from legacy_stub.app import create_app
from tests.support.servers import free_port, serve_in_thread, serve_process

NEW_ORDER = {
    "user_id": 2,
    "items": [
        {"product_id": 1, "quantity": 2, "unit_price_cents": 8900},
        {"product_id": 4, "quantity": 1, "unit_price_cents": 990},
    ],
}


@pytest.fixture(scope="module")
def legacy() -> Iterator[httpx.Client]:
    """One monolith for the tests that only read; a test that writes takes `fresh_legacy`."""
    with serve_in_thread(create_app()) as base_url, httpx.Client(base_url=base_url) as client:
        yield client


@pytest.fixture
def fresh_legacy() -> Iterator[httpx.Client]:
    with serve_in_thread(create_app()) as base_url, httpx.Client(base_url=base_url) as client:
        yield client


def expected_pattern(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/api/users", "users"),
        ("/api/users/1", "email"),
        ("/api/products", "products"),
        ("/api/products/2", "sku"),
        ("/api/orders", "orders"),
        ("/api/orders/1", "total_cents"),
    ],
    ids=["users", "user", "products", "product", "orders", "order"],
)
def test_resources_are_served_by_legacy(legacy: httpx.Client, path: str, key: str) -> None:
    # GIVEN the monolith's seeded resources
    # WHEN one is read
    response = legacy.get(path)
    # THEN it answers JSON, marked as the legacy's in header and body
    assert response.status_code == 200
    assert response.headers["x-served-by"] == "legacy"
    assert response.json()["served_by"] == "legacy"
    assert key in response.json()


@pytest.mark.parametrize(
    "path",
    ["/api/users/999", "/api/products/999", "/api/orders/999"],
    ids=["user", "product", "order"],
)
def test_missing_resource_is_a_json_404(legacy: httpx.Client, path: str) -> None:
    # GIVEN an id nothing has
    # WHEN it is read
    response = legacy.get(path)
    # THEN the answer is a 404 in JSON, still marked as the legacy's
    assert response.status_code == 404
    assert response.headers["x-served-by"] == "legacy"
    assert response.json()["error"] == "not_found"


def test_created_order_is_readable(fresh_legacy: httpx.Client) -> None:
    # GIVEN a fresh monolith with three seeded orders
    legacy = fresh_legacy
    # WHEN an order is posted
    created = legacy.post("/api/orders", json=NEW_ORDER)
    # THEN it is created with its total and can be read back and listed
    assert created.status_code == 201
    order = created.json()
    assert order["total_cents"] == 2 * 8900 + 990
    assert order["status"] == "pending"
    assert legacy.get(f"/api/orders/{order['id']}").json() == order
    assert legacy.get("/api/orders").json()["count"] == 4


def test_echo_returns_the_exact_binary_body(legacy: httpx.Client) -> None:
    # GIVEN a body holding every byte value, including invalid UTF-8
    body = bytes(range(256)) * 3 + b"\xff\xfe\x00"
    # WHEN it is posted to the echo endpoint
    response = legacy.post(
        "/echo/upload", content=body, headers={"content-type": "application/octet-stream"}
    )
    # THEN the echo holds exactly those bytes
    echoed = response.json()
    assert base64.b64decode(echoed["body_base64"]) == body
    assert echoed["body_length"] == len(body)


def test_echo_keeps_repeated_headers_in_order(legacy: httpx.Client) -> None:
    # GIVEN a request repeating a header, with another one in between
    headers = [("x-rep", "1"), ("x-other", "a"), ("x-rep", "2"), ("x-rep", "3")]
    # WHEN it is echoed
    response = legacy.get("/echo/headers", headers=headers)
    # THEN every occurrence arrives, in the order sent
    received = [tuple(pair) for pair in response.json()["headers"]]
    assert [pair for pair in received if pair[0].startswith("x-")] == headers


def test_echo_keeps_the_raw_query_and_path(legacy: httpx.Client) -> None:
    # GIVEN a percent-encoded path and a query with repeated and encoded keys
    url = "/echo/a%2Fb/c%20d?tag=1&tag=2&q=%2Fx%20y&plus=a+b&empty=&flag"
    # WHEN it is echoed
    echoed = legacy.get(url).json()
    # THEN the query is byte for byte what was sent, and the path both decoded and raw
    assert echoed["query"] == "tag=1&tag=2&q=%2Fx%20y&plus=a+b&empty=&flag"
    assert echoed["raw_path"] == "/echo/a%2Fb/c%20d"
    assert echoed["path"] == "/echo/a/b/c d"


@pytest.mark.parametrize(
    "method",
    ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    ids=["get", "post", "put", "patch", "delete", "options"],
)
def test_echo_answers_every_method(legacy: httpx.Client, method: str) -> None:
    # GIVEN any method
    # WHEN it is sent to the echo endpoint
    response = legacy.request(method, "/echo/any")
    # THEN the echo names it
    assert response.status_code == 200
    assert response.json()["method"] == method


def test_echo_answers_head_without_a_body(legacy: httpx.Client) -> None:
    # GIVEN a HEAD request
    # WHEN it is sent to the echo endpoint
    response = legacy.head("/echo/any")
    # THEN it succeeds, with the length a GET would have had and no body
    assert response.status_code == 200
    assert int(response.headers["content-length"]) > 0
    assert response.content == b""


@pytest.mark.parametrize("code", [200, 201, 404, 418, 503], ids=["200", "201", "404", "418", "503"])
def test_status_answers_that_status_in_json(legacy: httpx.Client, code: int) -> None:
    # GIVEN a requested status
    # WHEN it is asked for
    response = legacy.post(f"/_stub/status/{code}")
    # THEN it is answered, with a JSON body naming it
    assert response.status_code == code
    assert response.json() == {"status": code}


@pytest.mark.parametrize("code", [204, 304], ids=["204", "304"])
def test_status_without_a_body(legacy: httpx.Client, code: int) -> None:
    # GIVEN a status that forbids a body
    # WHEN it is asked for
    response = legacy.get(f"/_stub/status/{code}")
    # THEN it is answered empty
    assert response.status_code == code
    assert response.content == b""


def test_slow_waits_before_answering(legacy: httpx.Client) -> None:
    # GIVEN a requested delay
    started = time.monotonic()
    # WHEN the slow endpoint is called
    response = legacy.get("/_stub/slow", params={"seconds": "0.3"})
    # THEN it answers only after that delay
    assert time.monotonic() - started >= 0.3
    assert response.json() == {"slept": 0.3}


@pytest.mark.parametrize(
    ("size", "chunk"),
    [(0, 65536), (1, 65536), (1_000_003, 4096), (3 * 65536, 65536)],
    ids=["empty", "one-byte", "odd-size-small-chunks", "exact-chunks"],
)
def test_download_streams_exactly_size_bytes(legacy: httpx.Client, size: int, chunk: int) -> None:
    # GIVEN a requested size and chunk size
    # WHEN the download is streamed
    with legacy.stream("GET", "/_stub/download", params={"size": size, "chunk": chunk}) as response:
        body = response.read()
    # THEN exactly that many pattern bytes arrive, with a Content-Length, not chunked
    assert response.headers["content-length"] == str(size)
    assert "transfer-encoding" not in response.headers
    assert response.headers["content-type"] == "application/octet-stream"
    assert body == expected_pattern(size)


def test_upload_counts_and_hashes_a_streamed_body(legacy: httpx.Client) -> None:
    # GIVEN a 3 MB body sent as a chunked stream of uneven pieces
    pieces = [bytes([n % 251]) * (100_000 + n) for n in range(30)]
    # WHEN it is uploaded
    response = legacy.put("/_stub/upload", content=iter(pieces))
    # THEN the stub reports its exact size and hash
    whole = b"".join(pieces)
    assert response.json() == {"bytes": len(whole), "sha256": hashlib.sha256(whole).hexdigest()}


def test_cookies_and_repeated_headers_stay_separate(legacy: httpx.Client) -> None:
    # GIVEN the cookies endpoint
    # WHEN it is called
    response = legacy.get("/_stub/cookies")
    # THEN each Set-Cookie and each x-multi is its own header line
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
    assert response.headers.get_list("x-multi") == ["one", "two"]
    assert dict(response.cookies) == {"a": "1", "b": "2"}


def test_gzip_bytes_are_gzip_encoded(legacy: httpx.Client) -> None:
    # GIVEN the gzip endpoint
    # WHEN its raw, undecoded bytes are read
    with legacy.stream("GET", "/_stub/gzip") as response:
        raw = b"".join(response.iter_raw())
    # THEN they are a gzip stream of a JSON document, sized by Content-Length
    assert response.headers["content-encoding"] == "gzip"
    assert raw[:2] == b"\x1f\x8b"
    assert int(response.headers["content-length"]) == len(raw)
    assert json.loads(gzip.decompress(raw))["compressed"] is True


def test_module_entry_point_serves_on_loopback() -> None:
    # GIVEN the stub started as `python -m legacy_stub --port PORT`, host left to its default
    port = free_port()
    with serve_process(["-m", "legacy_stub", "--port", str(port)], port):
        # WHEN it is called on loopback
        response = httpx.get(f"http://127.0.0.1:{port}/api/users")
    # THEN it answers as the legacy
    assert response.headers["x-served-by"] == "legacy"
