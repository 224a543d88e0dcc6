"""A Lambda Invoke API for the tests: records every payload, answers as each function is told.

Written apart from `gateway.cli.local_lambda` on purpose, so the gateway's Lambda path is checked
against a second reading of the wire format, not against itself. A function nobody told
anything is unknown: 404 ResourceNotFoundException, as Lambda answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

import pytest

from tests.support.servers import serve_in_thread

PREFIX, SUFFIX = "/2015-03-31/functions/", "/invocations"
Reply = tuple[int, list[tuple[bytes, bytes]], bytes]

AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)


@dataclass(frozen=True, slots=True)
class Invocation:
    """One invoke as it arrived: FunctionName from the path, ?Qualifier=, the parsed payload."""

    function: str
    qualifier: str | None
    event: Any


@dataclass(frozen=True, slots=True)
class Behaviour:
    kind: Literal["answer", "fail", "throttle", "not_json"]
    answer: Any = None
    delay: float = 0.0
    retry_after: int | None = None


class InvokeStub:
    """Pure ASGI; `invocations` fills up as requests come (a list append is thread-safe)."""

    def __init__(self) -> None:
        self.invocations: list[Invocation] = []
        self._behaviours: dict[str, Behaviour] = {}

    def reset(self) -> None:
        """Forget every invocation and every function (for a stub shared between tests)."""
        self.invocations.clear()
        self._behaviours.clear()

    def answer(self, name: str, response: dict[str, Any], *, delay: float = 0.0) -> None:
        """Answer `response` (an ALB answer), after `delay` seconds."""
        self._behaviours[name] = Behaviour("answer", response, delay)

    def fail(self, name: str, message: str = "bad order") -> None:
        """Raise ValueError(message) inside the function: a 200 with X-Amz-Function-Error."""
        self._behaviours[name] = Behaviour("fail", message)

    def throttle(self, name: str, retry_after: int | None = None) -> None:
        self._behaviours[name] = Behaviour("throttle", retry_after=retry_after)

    def not_json(self, name: str) -> None:
        self._behaviours[name] = Behaviour("not_json")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        payload = bytearray()
        while True:
            message = await receive()
            payload += message.get("body", b"")
            if not message.get("more_body", False):
                break
        status, headers, body = await self._reply(scope, bytes(payload))
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _reply(self, scope: Any, payload: bytes) -> Reply:
        path: str = scope["path"]
        if scope["method"] != "POST" or not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
            return aws_error(404, "UnknownOperationException", f"nothing at {path}")
        function = path[len(PREFIX) : -len(SUFFIX)]
        query = parse_qs(scope["query_string"].decode())
        qualifier = query["Qualifier"][-1] if "Qualifier" in query else None
        self.invocations.append(Invocation(function, qualifier, json.loads(payload or b"{}")))
        # `name`, `name:alias`, `arn:aws:lambda:REGION:ACCOUNT:function:name[:alias]`
        name = function.rsplit(":function:", 1)[-1].split(":", 1)[0]
        behaviour = self._behaviours.get(name)
        if behaviour is None:
            return aws_error(404, "ResourceNotFoundException", f"Function not found: {function}")
        await asyncio.sleep(behaviour.delay)
        return behave(behaviour)


def behave(behaviour: Behaviour) -> Reply:
    ok = [(b"content-type", b"application/json"), (b"x-amz-executed-version", b"$LATEST")]
    match behaviour.kind:
        case "answer":
            return 200, ok, json.dumps(behaviour.answer).encode()
        case "fail":
            error = {
                "errorMessage": behaviour.answer,
                "errorType": "ValueError",
                "requestId": "stub",
                "stackTrace": ['  File "/var/task/app.py", line 7, in handler\n'],
            }
            return 200, [*ok, (b"x-amz-function-error", b"Unhandled")], json.dumps(error).encode()
        case "throttle":
            status, headers, body = aws_error(429, "TooManyRequestsException", "Rate Exceeded.")
            if behaviour.retry_after is not None:
                headers.append((b"retry-after", str(behaviour.retry_after).encode()))
            return status, headers, body
        case "not_json":
            return 200, ok, b"<html>not json</html>"


def aws_error(status: int, error_type: str, message: str) -> Reply:
    headers = [(b"content-type", b"application/json"), (b"x-amzn-errortype", error_type.encode())]
    return status, headers, json.dumps({"Type": "User", "message": message}).encode()


@contextmanager
def running_stub() -> Iterator[tuple[InvokeStub, str]]:
    """A fresh stub on loopback -> (stub, its endpoint URL)."""
    stub = InvokeStub()
    with serve_in_thread(stub, lifespan="off") as url:
        yield stub, url


def fake_aws(monkeypatch: pytest.MonkeyPatch, directory: Path, *, credentials: bool = True) -> None:
    """AWS settings from this test only: none of the machine's files, variables or IMDS."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    empty = directory / "aws-empty"
    empty.write_text("", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    if credentials:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
