"""routes.yaml -> frozen GatewayConfig, and every way a file is refused (file:line:field)."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.config.load import load_config, parse_config
from gateway.config.model import (
    DEFAULT_TIMEOUT,
    ConfigError,
    ConfigProblem,
    HttpTarget,
    KeySource,
    LambdaTarget,
    Route,
)
from gateway.config.units import parse_duration

ROOT = Path(__file__).resolve().parents[2]

FULL_EXAMPLE = """\
targets:
  legacy:
    url: http://legacy.internal:8001/
    timeout: 10s
  billing:
    lambda: billing-fn
  billing-live:
    lambda: billing-fn:live
    region: eu-west-1
  billing-arn:
    lambda: arn:aws:lambda:eu-west-1:123456789012:function:billing-fn
routes:
  - name: orders
    path: /api/orders/
    methods: [get, POST]
    headers: {X-Canary: on}
    split: {legacy: 99.5, billing: 0.5}
    sticky: header:X-User-Id
    rewrite: /v2/orders
  - name: billing
    path: /billing
    split: {billing-live: 50, billing-arn: 50}
    sticky: cookie:session
  - name: rest
    path: /
    target: legacy
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "routes.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def refusal(tmp_path: Path, text: str) -> tuple[str, ConfigError]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return path, caught.value


# --- valid files ------------------------------------------------------------------------


def test_root_routes_yaml_loads() -> None:
    # GIVEN the demo route table shipped at the repository root
    path = str(ROOT / "routes.yaml")

    # WHEN it is loaded
    config = load_config(path)

    # THEN its targets and routes are all there, in file order
    assert sorted(config.targets) == ["legacy", "orders-v2", "orders-v2-fn"]
    assert [route.name for route in config.routes] == [
        "orders",
        "orders-canary-optin",
        "orders-v2-preview",
        "orders-lambda",
        "everything-else",
    ]
    assert config.source == path
    assert config.version


def test_full_example_loads_into_the_expected_objects() -> None:
    # GIVEN a file using every key: url+timeout, lambda name, name:alias, ARN, methods,
    # headers with an unquoted "on", fractional split, both sticky forms and rewrite

    # WHEN it is parsed
    config = parse_config(FULL_EXAMPLE, "t.yaml")

    # THEN each target and route is the frozen object the file describes
    assert dict(config.targets) == {
        "legacy": HttpTarget("legacy", "http://legacy.internal:8001", 10.0),
        "billing": LambdaTarget("billing", "billing-fn", DEFAULT_TIMEOUT),
        "billing-live": LambdaTarget(
            "billing-live", "billing-fn:live", DEFAULT_TIMEOUT, region="eu-west-1"
        ),
        "billing-arn": LambdaTarget(
            "billing-arn", "arn:aws:lambda:eu-west-1:123456789012:function:billing-fn"
        ),
    }
    assert config.routes == (
        Route(
            name="orders",
            path="/api/orders",
            split=(("legacy", 99.5), ("billing", 0.5)),
            methods=frozenset({"GET", "POST"}),
            headers=(("x-canary", "on"),),
            sticky=KeySource("header", "x-user-id"),
            rewrite="/v2/orders",
            line=13,
        ),
        Route(
            name="billing",
            path="/billing",
            split=(("billing-live", 50.0), ("billing-arn", 50.0)),
            sticky=KeySource("cookie", "session"),
            line=20,
        ),
        Route(name="rest", path="/", split=(("legacy", 100.0),), line=24),
    )
    assert config.routes[0].conditions == 2
    assert config.routes[1].targets == ("billing-live", "billing-arn")
    assert config.source == "t.yaml"


def test_loaded_config_is_frozen() -> None:
    # GIVEN a loaded config
    config = parse_config(FULL_EXAMPLE, "t.yaml")
    legacy = config.targets["legacy"]
    assert isinstance(legacy, HttpTarget)

    # WHEN / THEN any attempt to change it is refused
    with pytest.raises(FrozenInstanceError):
        config.routes[0].path = "/elsewhere"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        legacy.url = "http://elsewhere"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        config.routes = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.targets["new"] = HttpTarget("new", "http://new")  # type: ignore[index]
    assert config.routes[0].path == "/api/orders"


def test_gateway_prefix_lookalike_is_allowed() -> None:
    # GIVEN a route whose first segment only starts with the reserved word
    text = """\
targets:
  legacy: {url: "http://legacy:8001"}
routes:
  - name: lookalike
    path: /_gatewayx
    target: legacy
"""

    # WHEN it is parsed
    config = parse_config(text, "t.yaml")

    # THEN it is an ordinary route
    assert config.routes[0].path == "/_gatewayx"


# --- refused files ----------------------------------------------------------------------

HEAD = """\
targets:
  legacy: {url: "http://legacy:8001"}
  orders-v2: {url: "http://orders:8002"}
routes:
"""

INVALID = [
    pytest.param(
        HEAD + "  - name: orders\n    path: /api/orders\n     target: legacy\n",
        (7, "yaml", "not allowed"),
        id="bad-yaml-syntax",
    ),
    pytest.param(
        HEAD + "  - name: orders\n    path: /api/orders\n    split:\n"
        "      legacy: 90\n      orders-v3: 10\n",
        (9, "split.orders-v3", "did you mean 'orders-v2'"),
        id="unknown-target-in-split",
    ),
    pytest.param(
        HEAD + "  - name: orders\n    path: /api/orders\n    target: legasy\n",
        (7, "target", "did you mean 'legacy'"),
        id="unknown-single-target",
    ),
    pytest.param(
        HEAD + "  - name: orders\n    path: /api/orders\n    split:\n"
        "      legacy: 90\n      orders-v2: 20\n",
        (7, "split", "sum to 110"),
        id="weights-not-100",
    ),
    pytest.param(
        HEAD + "  - name: orders\n    path: /a\n    target: legacy\n"
        "  - name: orders\n    path: /b\n    target: legacy\n",
        (8, "name", "duplicate route name 'orders' (first at line 5)"),
        id="duplicate-route-name",
    ),
    pytest.param(
        HEAD + "  - name: orders\n    path: api/orders\n    target: legacy\n",
        (6, "path", "must start with '/'"),
        id="path-without-slash",
    ),
    pytest.param(
        HEAD + "  - name: admin\n    path: /_gateway\n    target: legacy\n",
        (6, "path", "reserved"),
        id="reserved-prefix",
    ),
    pytest.param(
        HEAD + "  - name: admin\n    path: /_gateway/x\n    target: legacy\n",
        (6, "path", "reserved"),
        id="under-reserved-prefix",
    ),
    pytest.param(
        HEAD + "  - name: orders\n    path: /api/orders\n    spilt: {legacy: 100}\n",
        (7, "spilt", "did you mean 'split'"),
        id="unknown-key-spilt",
    ),
    pytest.param(
        HEAD + "  - name: orders\n    path: /api/orders\n    target: legacy\n"
        "    split: {legacy: 100}\n",
        (5, "routes[0:orders]", "exactly one of 'split' or 'target'"),
        id="split-and-target",
    ),
    pytest.param(
        HEAD + "  - name: orders\n    path: /api/orders\n",
        (5, "routes[0:orders]", "exactly one of 'split' or 'target'"),
        id="neither-split-nor-target",
    ),
    pytest.param(
        "targets:\n  legacy:\n    url: http://legacy:8001\n    timeout: 10x\n"
        "routes:\n  - {name: r, path: /, target: legacy}\n",
        (4, "targets.legacy.timeout", "'10x' is not a duration"),
        id="bad-timeout",
    ),
    pytest.param(
        "targets:\n  legacy:\n    url: http://legacy:8001\n    timeout: 0\n"
        "routes:\n  - {name: r, path: /, target: legacy}\n",
        (4, "targets.legacy.timeout", "more than zero"),
        id="zero-timeout",
    ),
    pytest.param(
        HEAD + "  - name: orders\n    path: /api/orders\n    split:\n"
        "      legacy: 110\n      orders-v2: -10\n",
        (9, "split.orders-v2", "not a percentage"),
        id="negative-weight",
    ),
    pytest.param(
        "targets:\n  legacy:\n    url: http://legacy:8001\n    lambda: legacy-fn\n"
        "routes:\n  - {name: r, path: /, target: legacy}\n",
        (2, "targets.legacy", "exactly one of 'url'"),
        id="url-and-lambda",
    ),
    pytest.param(
        "targets:\n  billing:\n    lambda: 'billing fn!'\n"
        "routes:\n  - {name: r, path: /, target: billing}\n",
        (3, "targets.billing.lambda", "not a function name"),
        id="bad-lambda-name",
    ),
    pytest.param(
        "targets:\n  legacy:\n    url: ftp://legacy:21\n"
        "routes:\n  - {name: r, path: /, target: legacy}\n",
        (3, "targets.legacy.url", "not an http(s) URL"),
        id="non-http-url",
    ),
    pytest.param(
        "targets:\n  legacy:\n    url: http://legacy:80\n    breaker: {failure_rate: 0}\n"
        "routes:\n  - {name: r, path: /, target: legacy}\n",
        (4, "targets.legacy.breaker", "failure_rate must be in (0, 1]"),
        id="breaker-that-could-never-open",
    ),
    pytest.param(
        HEAD + "  - name: orders\n    path: /api/orders\n    target: legacy\n    sticky: foo\n",
        (8, "sticky", "header:NAME, cookie:NAME or jwt:sub"),
        id="bad-sticky",
    ),
    pytest.param(
        HEAD + "  - name: orders\n    path: /api/orders\n    methods: [GET, FETCH]\n"
        "    target: legacy\n",
        (7, "methods", "FETCH"),
        id="unknown-method",
    ),
]


@pytest.mark.parametrize(("text", "expected"), INVALID)
def test_invalid_config_is_refused_with_file_line_and_field(
    tmp_path: Path, text: str, expected: tuple[int, str, str]
) -> None:
    # GIVEN a file with one mistake
    line, field, message = expected

    # WHEN it is loaded
    path, error = refusal(tmp_path, text)

    # THEN one of the problems names this file, the mistake's line and field, and why
    located = [
        problem
        for problem in error.problems
        if problem.line == line and field in problem.where and message in problem.message
    ]
    assert located, f"no problem at line {line} on {field!r}: {error.problems}"
    assert all(problem.source == path for problem in error.problems)
    assert str(located[0]).startswith(f"{path}:{line}: ")
    assert f"{path}:{line}: " in str(error)


def test_every_problem_in_a_file_is_listed_in_one_error(tmp_path: Path) -> None:
    # GIVEN a file with five independent mistakes
    text = """\
targets:
  legacy:
    url: http://legacy:8001
    timeout: soon
routes:
  - name: orders
    path: api/orders
    target: legacy
  - name: users
    path: /users
    methods: [GET, FETCH]
    target: legacy
  - name: carts
    path: /carts
    target: legacy
    sticky: foo
  - name: orders
    path: /orders
    target: legacy
"""

    # WHEN it is loaded
    path, error = refusal(tmp_path, text)

    # THEN all five come back together, each at its own line
    assert len(error.problems) == 5
    assert sorted(problem.line for problem in error.problems) == [4, 7, 11, 16, 17]
    assert str(error).startswith("5 problems in config:")
    for problem in error.problems:
        assert f"{path}:{problem.line}: {problem.where}: " in str(error)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    # GIVEN a path where no file exists
    path = str(tmp_path / "missing.yaml")

    # WHEN it is loaded
    with pytest.raises(ConfigError) as caught:
        load_config(path)

    # THEN the one problem names the file
    assert caught.value.problems == (
        ConfigProblem(path, 0, "file", caught.value.problems[0].message),
    )
    assert "cannot read" in caught.value.problems[0].message


def test_app_never_starts_on_a_half_valid_config(tmp_path: Path) -> None:
    # GIVEN a file whose first route is fine and whose second is not
    path = write(
        tmp_path,
        HEAD + "  - {name: ok, path: /ok, target: legacy}\n"
        "  - {name: bad, path: /bad, target: nowhere}\n",
    )

    # WHEN the app is built on it
    with pytest.raises(ConfigError) as caught:
        create_app(path)

    # THEN it is refused, naming the broken line
    assert [(problem.source, problem.line) for problem in caught.value.problems] == [(path, 6)]


# --- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("250ms", 0.25, id="milliseconds"),
        pytest.param("10s", 10.0, id="seconds"),
        pytest.param("2m", 120.0, id="minutes"),
        pytest.param("1h", 3600.0, id="hours"),
        pytest.param("1.5s", 1.5, id="fractional-seconds"),
        pytest.param(5, 5.0, id="bare-int"),
        pytest.param(0.5, 0.5, id="bare-float"),
    ],
)
def test_duration_is_read_as_seconds(text: object, seconds: float) -> None:
    # GIVEN a duration as written in routes.yaml
    # WHEN it is parsed
    parsed = parse_duration(text)

    # THEN it is that many seconds, as a float
    assert isinstance(parsed, float)
    assert parsed == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("10x", id="unknown-unit"),
        pytest.param("", id="empty"),
        pytest.param("s", id="unit-only"),
        pytest.param("-1s", id="negative"),
        pytest.param("ten seconds", id="words"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="none"),
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="infinity"),
    ],
)
def test_bad_duration_raises_value_error(text: object) -> None:
    # GIVEN something that is not a duration
    # WHEN it is parsed
    with pytest.raises(ValueError, match="is not a duration") as caught:
        parse_duration(text)

    # THEN the message says what is accepted
    assert "250ms" in str(caught.value)


def test_numeric_header_value_keeps_its_written_text_or_is_refused() -> None:
    # GIVEN a header condition whose value YAML would read as a number
    text = HEAD + "  - name: v110\n    path: /api\n    headers: {x-api-version: 1.10}\n"
    text += "    target: legacy\n"

    # WHEN it is parsed
    try:
        config = parse_config(text, "t.yaml")
    except ConfigError:
        return  # refusing a non-string header value would also be a correct fix

    # THEN the route compares against the text as written ("1.10"), not float 1.1
    assert config.routes[0].headers == (("x-api-version", "1.10"),)


def test_past_the_listed_problems_no_hint_is_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a table naming 500 unknown targets among 500 known ones (a difflib hint for each
    # made loading quadratic: 3,000 x 3,000 took 14 s)
    import difflib

    calls = 0
    close_matches = difflib.get_close_matches

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return close_matches(*args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counted)
    targets = "".join(f"  t{i}: {{url: 'http://127.0.0.1:1'}}\n" for i in range(500))
    routes = "".join(f"  - {{name: r{i}, path: /r{i}, target: t{i}x}}\n" for i in range(500))
    # WHEN it is loaded
    with pytest.raises(ConfigError) as refused:
        parse_config(f"targets:\n{targets}routes:\n{routes}", "many.yaml")
    # THEN 100 problems are listed with their hints, and no hint is sought for the rest
    assert len(refused.value.problems) == 101
    assert "did you mean 't0'?" in str(refused.value.problems[0])
    assert calls <= 101
