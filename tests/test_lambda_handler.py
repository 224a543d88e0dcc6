"""The Lambda entry fed recorded ALB events (and HTTP API ones), against a real upstream."""

from __future__ import annotations

import asyncio
import base64
import copy
import importlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.alb.fields import header_list
from tests.support import lambda_kit as kit
from tests.support.lambda_kit import alb_event, answer_body, error_code, lambda_entry, pattern
from tests.support.lambda_runner import LambdaProcess
from tests.support.servers import free_port, recording_sink, write_config

EVENTS = Path(__file__).parent / "events"
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class Context:
    function_name = "gateway"
    aws_request_id = "test-request"


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def single_value(event: dict[str, Any]) -> dict[str, Any]:
    """The same request as an ALB without multi-value headers would send it."""
    out = copy.deepcopy(event)
    out["headers"] = {k: v[-1] for k, v in out.pop("multiValueHeaders").items()}
    query = out.pop("multiValueQueryStringParameters")
    out["queryStringParameters"] = {k: v[-1] for k, v in query.items()}
    return out


def http_api_event(method: str, path: str, query: str, body: bytes) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "api.example.com", "content-type": "application/octet-stream"},
        "requestContext": {
            "http": {"method": method, "path": path, "sourceIp": "198.51.100.7"},
            "domainName": "api.example.com",
            "stage": "$default",
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


@pytest.fixture
def lambda_module(
    tmp_path: Path, legacy_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    config = write_config(
        tmp_path,
        f"""
targets:
  legacy: {{url: "{legacy_url}"}}
  gone: {{url: "http://127.0.0.1:{free_port()}"}}
routes:
  - {{name: todos, path: /todos, rewrite: /echo/todos, target: legacy}}
  - {{name: broken, path: /broken, target: gone}}
  - {{name: rest, path: /, target: legacy}}
""",
    )
    monkeypatch.setenv("GATEWAY_CONFIG", config)
    monkeypatch.setenv("GATEWAY_CONFIG_TTL", "0.1")
    sys.modules.pop("gateway.lambda_handler", None)
    module = importlib.import_module("gateway.lambda_handler")
    yield module
    sys.modules.pop("gateway.lambda_handler", None)
    runtime = module.app.state.runtime.current
    asyncio.get_event_loop().run_until_complete(runtime.aclose())


def decoded_body(answer: dict[str, Any]) -> bytes:
    body: str = answer["body"]
    return base64.b64decode(body) if answer["isBase64Encoded"] else body.encode()


def echoed(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["statusCode"] == 200, answer
    body: dict[str, Any] = json.loads(decoded_body(answer))
    return body


def test_multi_value_query_event_reaches_the_upstream_exactly(lambda_module: Any) -> None:
    # GIVEN the recorded ALB event with a repeated query key
    event = load_event("alb-multi-value-query.json")
    # WHEN the handler answers it
    answer = lambda_module.handler(event, Context())
    request = echoed(answer)
    # THEN the upstream got the rewritten path and every query value, in order
    assert request["raw_path"] == "/echo/todos"
    assert request["query"] == "parameter1=value1&parameter1=value2&parameter2=value"
    # AND the answer is in multi-value mode, naming route and target
    assert answer["multiValueHeaders"]["x-gateway-route"] == ["todos"]
    assert answer["multiValueHeaders"]["x-gateway-target"] == ["legacy"]
    assert "headers" not in answer


def test_forwarded_for_is_what_the_alb_sent(lambda_module: Any) -> None:
    # GIVEN the recorded multi-value headers event (the ALB already appended the client)
    event = load_event("alb-multi-value-headers.json")
    # WHEN it is forwarded
    request = echoed(lambda_module.handler(event, Context()))
    headers = dict((k, v) for k, v in request["headers"] if k.startswith("x-"))
    # THEN X-Forwarded-For is unchanged, and the trace id travels on
    assert headers["x-forwarded-for"] == "123.123.123.123"
    assert headers["x-amzn-trace-id"].startswith("Root=1-62fa9327")


def test_single_value_event_gets_a_single_value_answer(lambda_module: Any) -> None:
    # GIVEN the same request from an ALB without multi-value headers
    event = single_value(load_event("alb-multi-value-query.json"))
    # WHEN the handler answers it
    answer = lambda_module.handler(event, Context())
    # THEN the answer uses `headers`, as that ALB requires
    assert answer["headers"]["x-gateway-route"] == "todos"
    assert "multiValueHeaders" not in answer
    assert echoed(answer)["query"] == "parameter1=value2&parameter2=value"


def test_base64_request_body_and_binary_answer(lambda_module: Any) -> None:
    # GIVEN a POST whose body is binary, base64 in the event
    body = bytes(range(256)) * 4
    event = load_event("alb-multi-value-headers.json")
    event.update(
        httpMethod="POST",
        path="/echo/upload",
        body=base64.b64encode(body).decode(),
        isBase64Encoded=True,
    )
    # WHEN it is forwarded, and a binary download is asked for
    request = echoed(lambda_module.handler(event, Context()))
    download = dict(event, httpMethod="GET", path="/_stub/download", body="")
    download["multiValueQueryStringParameters"] = {"size": ["1000"]}
    answer = lambda_module.handler(download, Context())
    # THEN the upstream got the exact bytes, and the binary answer comes back base64
    assert base64.b64decode(request["body_base64"]) == body
    assert answer["isBase64Encoded"] is True
    assert decoded_body(answer) == (bytes(range(256)) * 4)[:1000]


def test_http_api_event_is_routed_the_same_way(lambda_module: Any) -> None:
    # GIVEN an API Gateway HTTP API (v2) event with a binary body
    event = http_api_event("PUT", "/todos/9", "a=%41&a=2", b"\x00\xff")
    # WHEN the handler answers it
    answer = lambda_module.handler(event, Context())
    request = echoed(answer)
    # THEN routing, rewrite, query and body match the uvicorn path
    assert request["method"] == "PUT"
    assert request["raw_path"] == "/echo/todos/9"
    assert request["query"] == "a=%41&a=2"
    assert base64.b64decode(request["body_base64"]) == b"\x00\xff"
    assert answer["headers"]["x-gateway-route"] == "todos"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("/_stub/status/503", 503, None), ("/broken", 502, "upstream_unavailable")],
    ids=["upstream-status-passes", "refused-is-502"],
)
def test_errors_answer_in_alb_shape(
    lambda_module: Any, path: str, status: int, code: str | None
) -> None:
    # GIVEN an event for a failing path
    event = dict(load_event("alb-multi-value-headers.json"), path=path)
    # WHEN the handler answers it
    answer = lambda_module.handler(event, Context())
    # THEN the status is right and a gateway error is the JSON shape
    assert answer["statusCode"] == status
    if code is not None:
        assert json.loads(decoded_body(answer))["error"] == code


def test_warm_invocations_reuse_the_table_and_the_pool(lambda_module: Any) -> None:
    # GIVEN a first (cold) invocation
    event = load_event("alb-multi-value-headers.json")
    lambda_module.handler(event, Context())
    runtime = lambda_module.app.state.runtime.current
    session = runtime.upstreams["legacy"]._session
    # WHEN more invocations follow
    for _ in range(3):
        assert lambda_module.handler(event, Context())["statusCode"] == 200
    # THEN the same route table and the same connection pool served them, still open
    assert lambda_module.app.state.runtime.current is runtime
    assert runtime.upstreams["legacy"]._session is session
    assert session is not None and not session.closed


@pytest.fixture
def traced_lambda_module(
    lambda_module: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, list[tuple[str, bytes]]]]:
    """The handler re-imported with tracing on: OTLP to a local sink, batched for a minute."""
    with recording_sink() as (sink_url, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink_url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
        sys.modules.pop("gateway.lambda_handler", None)
        module = importlib.import_module("gateway.lambda_handler")
        yield module, received
        sys.modules.pop("gateway.lambda_handler", None)
        asyncio.get_event_loop().run_until_complete(module.app.state.runtime.current.aclose())
        module.app.state.telemetry.tracing.shutdown()


def test_every_span_is_flushed_before_the_handler_returns(
    traced_lambda_module: tuple[Any, list[tuple[str, bytes]]],
) -> None:
    module, received = traced_lambda_module
    # GIVEN spans batched for a minute, far longer than an invocation
    event = load_event("alb-multi-value-query.json")
    # WHEN one invocation returns
    answer = module.handler(event, Context())
    exported = b"".join(body for path, body in received if path == "/v1/traces")
    # THEN its server and client spans were already exported, in the ALB's trace
    assert answer["statusCode"] == 200
    assert b"GET todos" in exported
    assert bytes.fromhex("62fa932721cdd4da4c6db451490a5fb7") in exported


def test_the_config_is_re_read_after_its_ttl(lambda_module: Any) -> None:
    # GIVEN a warm function whose config file changes (TTL 100 ms)
    event = dict(load_event("alb-multi-value-headers.json"), path="/todos")
    assert lambda_module.handler(event, Context())["multiValueHeaders"]["x-gateway-route"] == [
        "todos"
    ]
    path = Path(lambda_module.app.state.reloader.source.description)
    path.write_text(path.read_text().replace("name: todos", "name: todos-v2"))
    # WHEN an invocation comes after the TTL
    time.sleep(0.15)
    answer = lambda_module.handler(event, Context())
    # THEN it is served by the new table
    assert answer["multiValueHeaders"]["x-gateway-route"] == ["todos-v2"]


# The entry in a fresh interpreter, as Lambda runs it, against real upstreams on loopback.


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaProcess]:
    with lambda_entry(tmp_path_factory.mktemp("entry")) as process:
        yield process


STREAMED = ["chunked/1000", "chunked/300000", "sized/300000", "unsized/100", "unsized/300000"]


@pytest.mark.parametrize("multi", [True, False], ids=["alb-multi", "alb-single"])
@pytest.mark.parametrize("path", STREAMED, ids=STREAMED)
def test_alb_answers_arrive_whole_however_the_upstream_frames_them(
    entry: LambdaProcess, path: str, multi: bool
) -> None:
    # GIVEN an upstream answer that is chunked, unsized, or over 256 KiB
    size = int(path.rsplit("/", 1)[1])
    # WHEN an ALB event asks for it
    answer = entry.invoke(alb_event(path=f"/{path}", multi=multi))
    # THEN the whole body comes back, byte for byte
    assert answer["statusCode"] == 200
    assert answer_body(answer) == pattern(size)


def test_http_api_answers_arrive_whole_when_streamed(entry: LambdaProcess) -> None:
    # GIVEN a chunked answer of 2 MB, over the ALB's cap but under HTTP API's
    # WHEN an HTTP API event asks for it
    answer = entry.invoke(kit.http_api_event(raw_path="/chunked/2000000"))
    # THEN it arrives whole
    assert answer["statusCode"] == 200
    assert answer_body(answer) == pattern(2_000_000)


@pytest.mark.parametrize(
    ("event", "limit"),
    [
        (alb_event(path="/sized/750000"), "1 MB"),
        (alb_event(path="/chunked/2000000", multi=False), "1 MB"),
        (alb_event(path="/unsized/760000"), "1 MB"),
        (kit.http_api_event(raw_path="/chunked/7000000"), "6 MB"),
    ],
    ids=["alb-sized-just-over", "alb-chunked-2mb", "alb-unsized", "http-api-chunked-7mb"],
)
def test_an_answer_too_large_for_the_caller_is_a_json_502(
    entry: LambdaProcess, event: dict[str, Any], limit: str
) -> None:
    # GIVEN an answer that cannot fit in what the caller accepts (base64 included)
    # WHEN the handler serves it
    answer = entry.invoke(event)
    # THEN a JSON 502 names the limit: no truncated body, no invocation error
    assert answer["statusCode"] == 502
    assert error_code(answer) == "response_too_large"
    assert limit in json.loads(answer_body(answer))["message"]
    assert len(json.dumps(answer)) < 2000


def test_an_answer_just_under_the_alb_cap_is_returned(entry: LambdaProcess) -> None:
    # GIVEN an answer whose base64 JSON is just under 1 MB (740000 bytes -> 986668 base64)
    answer = entry.invoke(alb_event(path="/sized/740000"))
    # THEN it comes back whole, and its serialized size is indeed under the cap
    assert answer["statusCode"] == 200
    assert answer_body(answer) == pattern(740000)
    assert 980_000 < len(json.dumps(answer)) <= 1_000_000


@pytest.mark.parametrize("multi", [True, False], ids=["alb-multi", "alb-single"])
def test_header_values_and_paths_outside_latin1_are_forwarded(
    entry: LambdaProcess, multi: bool
) -> None:
    # GIVEN an ALB event with a latin-1 header, a header beyond latin-1 and such a path
    headers = {"host": ["gw"], "x-latin": ["caf\u00e9"], "x-wide": ["\u65e5\u672c"]}
    event = alb_event(path="/echo/\u65e5\u00e9", headers=headers, multi=multi)
    # WHEN the handler serves it
    request = kit.echoed(entry.invoke(event))
    # THEN it is answered, the path percent-encoded as UTF-8 and both headers forwarded
    # (their bytes are checked below: the HTTP upstream's own encoding is not the entry's)
    received = dict((name, value) for name, value in request["headers"])
    assert request["raw_path"] == "/echo/%E6%97%A5%C3%A9"
    assert {"x-latin", "x-wide"} <= received.keys()


def test_header_values_become_latin1_bytes_when_they_fit_else_utf8() -> None:
    # GIVEN header values as an event carries them: characters, not bytes
    pairs = [("X-Latin", "caf\u00e9"), ("x-wide", "\u65e5\u672c"), ("x-plain", "ok")]
    # WHEN the entry turns them into the request's headers
    headers = header_list(pairs)
    # THEN one byte a character when every character fits latin-1, else UTF-8
    assert headers == [
        (b"x-latin", b"caf\xe9"),
        (b"x-wide", "\u65e5\u672c".encode()),
        (b"x-plain", b"ok"),
    ]


def test_a_header_name_that_is_no_token_is_a_json_400(entry: LambdaProcess) -> None:
    # GIVEN a header name outside latin-1 (no client can send it as a token)
    event = alb_event(headers={"x-\u65e5": ["1"]})
    # WHEN the handler answers
    answer = entry.invoke(event)
    # THEN a JSON 400, in the event's shape
    assert answer["statusCode"] == 400
    assert error_code(answer) == "bad_request"
    assert "multiValueHeaders" in answer


def test_repeated_headers_survive_single_value_alb_answers(entry: LambdaProcess) -> None:
    # GIVEN an upstream answering three Set-Cookie and two Vary
    # WHEN a single-value ALB event asks for it
    answer = entry.invoke(alb_event(path="/repeated", multi=False))
    # THEN every cookie comes back under a casing of the name, and Vary joined
    headers = answer["headers"]
    assert headers["set-cookie"] == "a=1; Path=/"
    assert headers["Set-cookie"] == "b=2; Secure"
    assert headers["sEt-cookie"] == "c=3"
    assert headers["vary"] == "Accept, Origin"


def test_http_api_answers_carry_cookies_apart(entry: LambdaProcess) -> None:
    # GIVEN the same upstream, asked through an HTTP API event
    answer = entry.invoke(kit.http_api_event(raw_path="/repeated"))
    # THEN cookies go in `cookies`, other repeats joined
    assert answer["cookies"] == ["a=1; Path=/", "b=2; Secure", "c=3"]
    assert answer["headers"]["vary"] == "Accept, Origin"


def test_http_api_client_is_in_x_forwarded_for_once(entry: LambdaProcess) -> None:
    # GIVEN an HTTP API event whose X-Forwarded-For already ends with sourceIp, as AWS sends
    chain = "203.0.113.9, 198.51.100.7"
    event = kit.http_api_event(headers={"host": "h", "x-forwarded-for": chain})
    # WHEN it is forwarded
    request = kit.echoed(entry.invoke(event))
    # THEN the client address appears once, last
    forwarded = [value for name, value in request["headers"] if name == "x-forwarded-for"]
    assert len(forwarded) == 1
    assert forwarded[0].split(", ").count("198.51.100.7") == 1
    assert forwarded[0].endswith("198.51.100.7")


def test_http_api_encoded_slash_in_raw_path_is_refused(entry: LambdaProcess) -> None:
    # GIVEN an HTTP API event whose rawPath holds %2F (requestContext.http.path decodes it)
    event = kit.http_api_event(raw_path="/echo/a%2Fb")
    event["requestContext"]["http"]["path"] = "/echo/a/b"
    # WHEN the handler answers
    answer = entry.invoke(event)
    # THEN it is refused, as the ALB entry and uvicorn refuse it
    assert answer["statusCode"] == 400
    assert error_code(answer) == "bad_path"
