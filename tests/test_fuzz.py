"""Property tests: the path normalizer, routing on its output, the config loader and header
hygiene, fed generated input. Derandomized, so CI sees the same examples on every run."""

from __future__ import annotations

import io
import json
import warnings
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLFutureWarning, YAMLWarning

from gateway.config.load import ROUTE_KEYS, TOP_KEYS, load_text, parse_config
from gateway.config.model import ConfigError, GatewayConfig
from gateway.config.targets import HTTP_TARGET_KEYS, LAMBDA_TARGET_KEYS
from gateway.headers import HOP_BY_HOP, HeaderView, request_headers, response_headers
from gateway.normalize import PathRefused, normalize_path
from gateway.routing import RouteTable

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=300)

# --- the path normalizer ------------------------------------------------------------------

PATH_PIECES = st.sampled_from(
    [b"/", b"/", b"//", b".", b"..", b"%", b"%2e", b"%2E", b"2f", b"2F", b"%2f", b"%5c", b"%00",
     b"%61", b"%7e", b"%c3%a9", b"%C3", b"%zz", b"a", b"Z", b"0", b"f", b"admin", b";", b"~",
     b"\\", b"\x00", b" ", b"?", b"{", "é".encode(), b"\xff"]
)  # fmt: skip
RAW_PATHS = st.one_of(
    st.lists(PATH_PIECES, max_size=12).map(lambda pieces: b"/" + b"".join(pieces)),
    st.lists(st.one_of(PATH_PIECES, st.binary(max_size=3)), max_size=8).map(b"".join),
)


@FUZZ
@given(RAW_PATHS)
@example(b"/a/%2e%2E/b/")
def test_normalizer_only_refuses_and_its_output_is_canonical(raw: bytes) -> None:
    # GIVEN any raw path built from slashes, dots, escapes and odd bytes
    # WHEN it is normalized
    try:
        decoded, forwarded = normalize_path(raw)
    except PathRefused:
        return  # the only exception allowed

    # THEN the decoded form is absolute, with no empty or dot segment but a trailing slash,
    # the forwarded form decodes to exactly it, and normalizing again changes nothing
    assert decoded.startswith("/")
    inner = decoded[1:].split("/")[:-1] if decoded != "/" else []
    assert not {"", ".", ".."} & set(inner)
    assert decoded.split("/")[-1] not in (".", "..")
    assert "//" not in decoded
    assert forwarded.isascii()
    assert unquote_to_bytes(forwarded).decode("utf-8") == decoded
    assert normalize_path(forwarded) == (decoded, forwarded)


ADMIN_ROUTES = """\
targets:
  admin: {url: "http://admin:9000"}
  public: {url: "http://public:8000"}
routes:
  - {name: admin, path: /admin, target: admin}
  - {name: api, path: /api, target: public, rewrite: /internal}
  - {name: public, path: /, target: public}
"""
ADMIN_TABLE = RouteTable(parse_config(ADMIN_ROUTES, "admin.yaml"))
NO_HEADERS = HeaderView([])
SEGMENTS = st.sampled_from(
    [b"..", b".", b"%2e", b"%2E%2e", b"%2e%2e", b"admin", b"%61dmin", b"ADMIN", b"", b"x",
     b"api", b"admin;x", b"..;", b"%2e.", b"adm%69n"]
)  # fmt: skip
SPELLINGS = st.lists(st.tuples(st.sampled_from([b"/", b"//"]), SEGMENTS), min_size=1, max_size=8)


@FUZZ
@given(SPELLINGS)
@example([(b"/", b"api"), (b"/", b".."), (b"/", b"%61dmin")])
def test_no_spelling_reaches_admin_by_another_route(spelling: list[tuple[bytes, bytes]]) -> None:
    # GIVEN a protected /admin route, a rewritten /api route and a public catch-all
    raw = b"".join(sep + segment for sep, segment in spelling)

    # WHEN a spelling made of dots, escapes and slashes is normalized and matched
    try:
        decoded, forwarded = normalize_path(raw)
    except PathRefused:
        return
    matched = ADMIN_TABLE.match("GET", decoded, NO_HEADERS)

    # THEN /admin is reached exactly when the normalized path is under /admin
    assert matched is not None
    under_admin = decoded.split("/")[1] == "admin"
    assert (matched.route.name == "admin") == under_admin
    if matched.route.name == "public":
        assert not decoded.startswith("/admin/") and decoded != "/admin"
    # AND what a rewrite forwards is still normal, and still under the rewrite's base
    upstream = matched.upstream_path(forwarded)
    assert normalize_path(upstream)[1] == upstream
    if matched.route.name == "api":
        assert upstream == b"/internal" or upstream.startswith(b"/internal/")


# --- the config loader --------------------------------------------------------------------

# The loader's own vocabulary, so a new section is fuzzed as soon as it is accepted.
CONFIG_WORDS = sorted({*TOP_KEYS, *HTTP_TARGET_KEYS, *LAMBDA_TARGET_KEYS, *ROUTE_KEYS})
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["http://a", "/api", "10s", "header:x", "GET", "a", "100", ""]),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(CONFIG_WORDS), st.text(max_size=6)), children),
    ),
    max_leaves=20,
)


def dump_yaml(tree: object) -> str:
    stream = io.StringIO()
    YAML(typ="rt").dump(tree, stream)
    return stream.getvalue()


def load_or_refuse(text: str) -> GatewayConfig | ConfigError:
    # ruamel warns (say, of a reused anchor) rather than failing; under filterwarnings=error
    # that warning would be raised from inside the loader and read as a crash.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", YAMLWarning)
        warnings.simplefilter("ignore", YAMLFutureWarning)
        try:
            return load_text(text, "fuzz.yaml")
        except ConfigError as error:
            return error


@settings(FUZZ, max_examples=200)  # ruamel parses ~1 ms per document
@given(st.one_of(TREES, st.fixed_dictionaries({"targets": TREES, "routes": TREES})), st.booleans())
def test_loader_on_any_tree_answers_config_or_config_error(tree: object, as_yaml: bool) -> None:
    # GIVEN any tree of mappings, lists and scalars, written as JSON or as YAML
    text = dump_yaml(tree) if as_yaml else json.dumps(tree)

    # WHEN the loader reads it
    result = load_or_refuse(text)

    # THEN it is a config or a ConfigError, never another exception
    assert isinstance(result, GatewayConfig | ConfigError)


def maybe(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(strategy, TREES)


NAMES = st.one_of(st.sampled_from(["a", "b", "c-1", ""]), st.text(max_size=5))
URLS = st.builds(
    str.__add__, st.sampled_from(["http://", "https://", "ftp://", ""]), st.text(max_size=12)
)
TARGETS = st.one_of(
    st.fixed_dictionaries({"url": maybe(URLS)}, optional={"timeout": SCALARS}),
    st.fixed_dictionaries(
        {"lambda": maybe(st.text(max_size=20))}, optional={"endpoint_url": maybe(URLS)}
    ),
)
ROUTES = st.fixed_dictionaries(
    {"name": maybe(NAMES), "path": maybe(st.text(max_size=10).map("/".__add__))},
    optional={
        "target": maybe(NAMES),
        "split": maybe(st.dictionaries(NAMES, SCALARS, max_size=3)),
        "methods": TREES,
        "headers": TREES,
        "sticky": SCALARS,
        "rewrite": maybe(st.text(max_size=10)),
    },
)
CONFIGS = st.fixed_dictionaries(
    {
        "targets": maybe(st.dictionaries(NAMES, TARGETS, max_size=3)),
        "routes": maybe(st.lists(ROUTES, max_size=3)),
    }
)


@FUZZ
@given(CONFIGS)
@example({"targets": {"b": {"url": "ftp://]ZG"}}, "routes": []})
def test_loader_on_config_shaped_documents(document: object) -> None:
    # GIVEN a document shaped like routes.yaml, with odd values in every field
    # WHEN the loader reads it
    result = load_or_refuse(json.dumps(document))

    # THEN it is a config or a ConfigError, never another exception
    assert isinstance(result, GatewayConfig | ConfigError)


YAML_TOKENS = st.sampled_from(
    ["targets:", "routes:", "\n", "  ", "- ", "url: ", "name: ", "path: ", "target: ", ": ",
     "a", "b", "{", "}", "[", "]", ",", "&x ", "*x", "!!set ", "!!omap ", "!tag ", "? ",
     "<<: ", "http://a", "/api", "0x1F", "'", '"', "#", "|", "---", "~", ".nan"]
)  # fmt: skip
YAML_TEXTS = st.one_of(st.text(max_size=60), st.lists(YAML_TOKENS, max_size=40).map("".join))


@FUZZ
@given(YAML_TEXTS)
@example("!tag ")
def test_loader_on_raw_text(text: str) -> None:
    # GIVEN arbitrary text, biased towards YAML's syntax (tags, anchors, complex keys)
    # WHEN the loader reads it
    result = load_or_refuse(text)

    # THEN it is a config or a ConfigError, never another exception
    assert isinstance(result, GatewayConfig | ConfigError)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            'targets: {a: {url: "http://]"}}',
            id="url-lone-bracket",
        ),
        pytest.param(
            "!tag",
            id="tagged-scalar-document",
        ),
        pytest.param(
            "!!set a",
            id="set-tag-on-scalar",
        ),
        pytest.param(
            "? : ?",
            id="block-mapping-as-key",
        ),
        pytest.param("? [a]\n? [b]", id="flow-sequence-keys"),
        pytest.param("a: &x 1\nb: &x 2", id="reused-anchor"),
    ],
)
def test_loader_minimal_inputs(text: str) -> None:
    # GIVEN the smallest inputs the fuzzers found (or nearly) for each loader crash
    # WHEN the loader reads one
    result = load_or_refuse(text)

    # THEN it is a config or a ConfigError, never another exception
    assert isinstance(result, GatewayConfig | ConfigError)


# --- header hygiene -----------------------------------------------------------------------

HEADER_NAMES = st.one_of(
    st.sampled_from(
        (
            b"connection keep-alive te trailer transfer-encoding upgrade proxy-authorization "
            b"proxy-connection host x-forwarded-for x-forwarded-proto x-forwarded-host "
            b"x-gateway-route foo set-cookie"
        ).split()
    ),
    st.binary(max_size=8),
)
HEADER_VALUES = st.one_of(
    st.sampled_from([b"close", b"foo, keep-alive", b" FOO ,,x-forwarded-for", b"1.2.3.4", b""]),
    st.binary(max_size=12),
)
ASGI_HEADERS = st.lists(st.tuples(HEADER_NAMES.map(bytes.lower), HEADER_VALUES), max_size=10)
WIRE_HEADERS = st.lists(
    st.tuples(HEADER_NAMES.map(lambda name: name.title()), HEADER_VALUES), max_size=10
)
GATEWAY_SET = {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"}


def nominated(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    return {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }


def assert_no_hop_by_hop(headers: list[tuple[bytes, bytes]], named: set[bytes]) -> None:
    for name, _ in headers:
        lowered = name.lower()
        assert lowered not in HOP_BY_HOP
        assert not lowered.startswith(b"proxy-")
        assert not lowered.startswith(b"x-gateway-")
        assert lowered in GATEWAY_SET or lowered not in named


@FUZZ
@given(
    ASGI_HEADERS,
    st.one_of(st.none(), st.ip_addresses().map(str)),
    st.sampled_from(["http", "https"]),
)
def test_request_headers_drop_hop_by_hop(
    headers: list[tuple[bytes, bytes]], client: str | None, scheme: str
) -> None:
    # GIVEN any ASGI request headers (lowercase names, per the spec) and client
    # WHEN they are prepared for the upstream
    out = request_headers(headers, client, scheme)

    # THEN nothing hop-by-hop, proxy-*, x-gateway-* or Connection-named goes out, nor Host
    assert_no_hop_by_hop(out, nominated(headers))
    assert b"host" not in {name for name, _ in out}


@FUZZ
@given(ASGI_HEADERS)
def test_response_headers_drop_hop_by_hop(headers: list[tuple[bytes, bytes]]) -> None:
    # GIVEN any upstream answer headers with lowercase names (the Lambda path lowercases)
    # WHEN they are prepared for the client
    out = response_headers(headers)

    # THEN nothing hop-by-hop, proxy-*, x-gateway-* or Connection-named goes out
    assert_no_hop_by_hop(out, nominated(headers))


@FUZZ
@given(WIRE_HEADERS)
@example([(b"Connection", b"close")])
def test_response_headers_drop_hop_by_hop_in_any_case(headers: list[tuple[bytes, bytes]]) -> None:
    # GIVEN upstream answer headers as aiohttp hands them over: names in the upstream's case
    # WHEN they are prepared for the client
    out = response_headers(headers)

    # THEN nothing hop-by-hop, proxy-*, x-gateway-* or Connection-named goes out
    assert_no_hop_by_hop(out, nominated(headers))
