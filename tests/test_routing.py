"""RouteTable.match / explain and RouteMatch.upstream_path: pure, no server needed."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from gateway.config.load import parse_config
from gateway.headers import HeaderView
from gateway.routing import RouteTable

TARGETS = """\
targets:
  legacy: {url: "http://legacy:8001"}
  orders-v2: {url: "http://orders:8002"}
routes:
"""

NO_HEADERS = HeaderView([])


def table(routes: str) -> RouteTable:
    return RouteTable(parse_config(TARGETS + routes, "t.yaml"))


def matched_name(
    routes: RouteTable, method: str, path: str, headers: HeaderView = NO_HEADERS
) -> str | None:
    found = routes.match(method, path, headers)
    return None if found is None else found.route.name


NESTED = table(
    """\
  - {name: root, path: /, target: legacy}
  - {name: api, path: /api, target: legacy}
  - {name: orders, path: /api/orders, target: orders-v2}
"""
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/api/orders/7", "orders", id="deepest-prefix"),
        pytest.param("/api/users", "api", id="middle-prefix"),
        pytest.param("/api", "api", id="exact-middle"),
        pytest.param("/elsewhere", "root", id="root-fallback"),
    ],
)
def test_longest_prefix_wins(path: str, expected: str) -> None:
    # GIVEN routes nested at /, /api and /api/orders
    # WHEN a request path is matched
    name = matched_name(NESTED, "GET", path)

    # THEN the route with the longest matching prefix is chosen
    assert name == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/api/orders", "orders", id="exact"),
        pytest.param("/api/orders/7", "orders", id="below"),
        pytest.param("/api/orders/", "orders", id="trailing-slash"),
        pytest.param("/api/orders/7/lines/2", "orders", id="deep-below"),
        pytest.param("/api/ordersX", "root", id="longer-segment"),
        pytest.param("/api/order", "root", id="shorter-segment"),
        pytest.param("/API/orders", "root", id="other-case"),
    ],
)
def test_prefix_matches_whole_segments_only(path: str, expected: str) -> None:
    # GIVEN a route at /api/orders and a catch-all
    routes = table(
        """\
  - {name: orders, path: /api/orders, target: orders-v2}
  - {name: root, path: /, target: legacy}
"""
    )

    # WHEN the path is matched
    name = matched_name(routes, "GET", path)

    # THEN /api/orders only covers whole segments under it
    assert name == expected


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/", id="slash"),
        pytest.param("/anything", id="one-segment"),
        pytest.param("/a/b/c/d", id="deep"),
    ],
)
def test_root_route_catches_everything(path: str) -> None:
    # GIVEN only a root route
    routes = table("  - {name: root, path: /, target: legacy}\n")

    # WHEN any path is matched
    found = routes.match("DELETE", path, NO_HEADERS)

    # THEN the root route takes it, at depth 0
    assert found is not None
    assert (found.route.name, found.depth) == ("root", 0)


TIED = table(
    """\
  - {name: plain, path: /api/orders, target: legacy}
  - {name: canary, path: /api/orders, headers: {x-canary: "on"}, target: orders-v2}
  - name: canary-get
    path: /api/orders
    methods: [GET]
    headers: {x-canary: "on"}
    target: orders-v2
  - {name: plain-twin, path: /api/orders, target: orders-v2}
"""
)


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        pytest.param("GET", [(b"x-canary", b"on")], "canary-get", id="two-conditions"),
        pytest.param("POST", [(b"x-canary", b"on")], "canary", id="one-condition"),
        pytest.param("GET", [], "plain", id="no-conditions-file-order"),
    ],
)
def test_tie_on_path_goes_to_more_conditions_then_file_order(
    method: str, headers: list[tuple[bytes, bytes]], expected: str
) -> None:
    # GIVEN four routes on the same path, the most specific written after the plain ones
    # WHEN a request is matched
    name = matched_name(TIED, method, "/api/orders/7", HeaderView(headers))

    # THEN the accepting route with most conditions wins; among equals, the first in the file
    assert name == expected


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        pytest.param("POST", "create", id="allowed-method"),
        pytest.param("PUT", "create", id="other-allowed-method"),
        pytest.param("GET", "root", id="refused-falls-back-to-shallower"),
    ],
)
def test_methods_filter_and_refusal_falls_back(method: str, expected: str) -> None:
    # GIVEN a deep route for POST/PUT only and a catch-all
    routes = table(
        """\
  - {name: create, path: /api/orders, methods: [POST, PUT], target: orders-v2}
  - {name: root, path: /, target: legacy}
"""
    )

    # WHEN a request under the deep route is matched
    found = routes.match(method, "/api/orders/7", NO_HEADERS)

    # THEN methods it lists go deep; others land on the shallower accepting route
    assert found is not None
    assert found.route.name == expected


@pytest.mark.parametrize(
    ("methods", "expected"),
    [
        pytest.param("[GET]", "read", id="get-route-takes-head"),
        pytest.param("[HEAD]", "read", id="head-route"),
        pytest.param("[POST]", "root", id="post-route-does-not"),
    ],
)
def test_head_is_matched_like_get(methods: str, expected: str) -> None:
    # GIVEN a route for some methods under a catch-all
    routes = table(
        f"""\
  - {{name: read, path: /manage, methods: {methods}, target: orders-v2}}
  - {{name: root, path: /, target: legacy}}
"""
    )

    # WHEN a HEAD is matched (and explained)
    found = matched_name(routes, "HEAD", "/manage")
    verdicts = routes.explain("HEAD", "/manage", NO_HEADERS)

    # THEN a GET route takes it, as it would the GET, and explain agrees
    assert found == expected
    assert next(v.route.name for v in verdicts if v.accepted) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param([(b"x-canary", b"on")], "canary", id="same-case"),
        pytest.param([(b"X-CANARY", b"on")], "canary", id="name-upper"),
        pytest.param([(b"X-Canary", b"ON")], "root", id="value-other-case"),
        pytest.param([(b"x-canary", b"on ")], "root", id="value-extra-space"),
        pytest.param([(b"x-canary", b"off")], "root", id="value-different"),
        pytest.param([], "root", id="header-absent"),
    ],
)
def test_header_name_is_case_insensitive_value_exact(
    headers: list[tuple[bytes, bytes]], expected: str
) -> None:
    # GIVEN a route wanting X-Canary: on (written with capitals) and a catch-all
    routes = table(
        """\
  - {name: canary, path: /api, headers: {X-Canary: "on"}, target: orders-v2}
  - {name: root, path: /, target: legacy}
"""
    )

    # WHEN requests carrying variants of that header are matched
    name = matched_name(routes, "GET", "/api/orders", HeaderView(headers))

    # THEN the name's case does not matter, the value must be exactly "on"
    assert name == expected


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/", id="root-uncovered"),
        pytest.param("GET", "/other", id="other-path"),
        pytest.param("GET", "/apix", id="partial-segment"),
        pytest.param("DELETE", "/api/orders/7", id="method-refused-everywhere"),
    ],
)
def test_no_match_is_none(method: str, path: str) -> None:
    # GIVEN routes that do not cover everything
    routes = table(
        """\
  - {name: orders, path: /api/orders, methods: [GET, POST], target: orders-v2}
  - {name: api, path: /api, methods: [GET], target: legacy}
"""
    )

    # WHEN a request outside them is matched
    found = routes.match(method, path, NO_HEADERS)

    # THEN there is no match
    assert found is None


# --- rewrite ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rewrite", "raw_path", "expected"),
    [
        pytest.param("/v2/orders", b"/api/orders/7", b"/v2/orders/7", id="below-prefix"),
        pytest.param("/v2/orders", b"/api/orders", b"/v2/orders", id="exact-prefix"),
        pytest.param("/v2/orders", b"/api/orders/", b"/v2/orders/", id="trailing-slash-kept"),
        pytest.param("/v2/orders/", b"/api/orders/7", b"/v2/orders/7", id="rewrite-with-slash"),
        pytest.param("/", b"/api/orders/7", b"/7", id="rewrite-to-root"),
        pytest.param("/", b"/api/orders", b"/", id="rewrite-to-root-exact"),
        pytest.param(
            "/v2/orders",
            b"/api/orders/a%2Fb%20c/%7E",
            b"/v2/orders/a%2Fb%20c/%7E",
            id="percent-escapes-kept",
        ),
    ],
)
def test_upstream_path_with_rewrite(rewrite: str, raw_path: bytes, expected: bytes) -> None:
    # GIVEN a route at /api/orders rewritten to another prefix
    routes = table(
        f"  - {{name: orders, path: /api/orders, rewrite: '{rewrite}', target: orders-v2}}\n"
    )
    found = routes.match("GET", unquote(raw_path.decode("ascii")), NO_HEADERS)
    assert found is not None

    # WHEN the path to forward is computed from the raw request path
    upstream = found.upstream_path(raw_path)

    # THEN the matched prefix is replaced and the rest is kept byte for byte
    assert upstream == expected


def test_upstream_path_without_rewrite_is_the_raw_path() -> None:
    # GIVEN a route without rewrite
    routes = table("  - {name: orders, path: /api/orders, target: orders-v2}\n")
    found = routes.match("GET", "/api/orders/a b", NO_HEADERS)
    assert found is not None

    # WHEN the path to forward is computed
    upstream = found.upstream_path(b"/api/orders/a%20b")

    # THEN it is untouched
    assert upstream == b"/api/orders/a%20b"


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        pytest.param(b"/a/b", b"/legacy/a/b", id="below-root"),
        pytest.param(b"/a%20b", b"/legacy/a%20b", id="escaped"),
    ],
)
def test_root_route_with_rewrite_prefixes_the_whole_path(raw_path: bytes, expected: bytes) -> None:
    # GIVEN a catch-all route rewritten under /legacy
    routes = table("  - {name: root, path: /, rewrite: /legacy, target: legacy}\n")
    found = routes.match("GET", unquote(raw_path.decode("ascii")), NO_HEADERS)
    assert found is not None

    # WHEN the path to forward is computed
    upstream = found.upstream_path(raw_path)

    # THEN the whole request path goes under the rewrite
    assert upstream == expected


def test_encoded_slash_in_matched_prefix_does_not_drop_the_rest() -> None:
    # GIVEN a rewritten route, and a request whose raw path encodes one of its slashes,
    # matched (as the proxy does) on the decoded path /api/orders/7
    routes = table("  - {name: orders, path: /api/orders, rewrite: /v2/orders, target: legacy}\n")
    found = routes.match("GET", unquote("/api%2Forders/7"), NO_HEADERS)
    assert found is not None

    # WHEN the path to forward is computed from the raw path
    upstream = found.upstream_path(b"/api%2Forders/7")

    # THEN the segment after the matched prefix is still forwarded
    assert upstream.endswith(b"/7")


# --- scale -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_table() -> RouteTable:
    # Built once for the module: the table is immutable, so sharing it is safe.
    lines = [f"  - {{name: svc-{n}, path: /svc/{n}/items, target: legacy}}" for n in range(10_000)]
    return table("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/svc/0/items", "svc-0", id="first"),
        pytest.param("/svc/1/items/9", "svc-1", id="second-below"),
        pytest.param("/svc/4242/items", "svc-4242", id="middle"),
        pytest.param("/svc/9999/items/", "svc-9999", id="last-trailing-slash"),
        pytest.param("/svc/10000/items", None, id="one-past-the-end"),
        pytest.param("/svc/42", None, id="above-every-route"),
        pytest.param("/svc/42/itemsX", None, id="partial-segment"),
    ],
)
def test_ten_thousand_routes_match_the_right_one(
    big_table: RouteTable, path: str, expected: str | None
) -> None:
    # GIVEN a table of 10,000 routes /svc/N/items
    assert len(big_table.config.routes) == 10_000

    # WHEN a path is matched
    name = matched_name(big_table, "GET", path)

    # THEN exactly the route for that N is chosen (or none)
    assert name == expected


# --- explain ---------------------------------------------------------------------------

EXPLAINED = table(
    """\
  - {name: create, path: /api/orders, methods: [POST], target: orders-v2}
  - {name: canary, path: /api/orders, headers: {x-canary: "on"}, target: orders-v2}
  - {name: root, path: /, target: legacy}
"""
)


def test_explain_marks_winner_and_says_why_others_were_refused() -> None:
    # GIVEN deep routes needing POST or a header, and a catch-all
    # WHEN a plain GET is explained
    verdicts = EXPLAINED.explain("GET", "/api/orders/7", NO_HEADERS)

    # THEN both deep routes are refused, naming the method and the header; root wins
    assert [(v.route.name, v.accepted) for v in verdicts] == [
        ("create", False),
        ("canary", False),
        ("root", True),
    ]
    assert "method GET" in verdicts[0].reason
    assert "header x-canary" in verdicts[1].reason
    assert "priority order" in verdicts[2].reason
    found = EXPLAINED.match("GET", "/api/orders/7", NO_HEADERS)
    assert found is not None
    assert found.route == verdicts[2].route


def test_explain_first_winner_is_the_longest_prefix() -> None:
    # GIVEN the same table
    # WHEN a POST carrying the canary header is explained
    verdicts = EXPLAINED.explain("POST", "/api/orders/7", HeaderView([(b"x-canary", b"on")]))

    # THEN the first deep route wins on its prefix; the others match but are passed over
    assert [(v.route.name, v.accepted) for v in verdicts] == [
        ("create", True),
        ("canary", False),
        ("root", False),
    ]
    assert "longest matching prefix '/api/orders'" in verdicts[0].reason
    assert all("a route above won" in v.reason for v in verdicts[1:])


def test_explain_with_no_winner_lists_only_refusals() -> None:
    # GIVEN a table whose only route wants POST
    routes = table("  - {name: create, path: /api, methods: [POST], target: legacy}\n")

    # WHEN a GET is explained
    verdicts = routes.explain("GET", "/api/x", NO_HEADERS)

    # THEN nothing is accepted and the refusal names the method
    assert [(v.route.name, v.accepted) for v in verdicts] == [("create", False)]
    assert "method GET not in ['POST']" in verdicts[0].reason
