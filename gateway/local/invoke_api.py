"""The AWS Lambda Invoke API as a pure ASGI app, over a fixed set of named handlers.

It answers `POST /2015-03-31/functions/{name}/invocations` as Lambda does: the function named
in any form Lambda accepts, `RequestResponse`, `Event` and `DryRun` invocations, a function's
error or timeout as a 200 with `X-Amz-Function-Error`, and the API's own errors with
`x-amzn-ErrorType`. The handlers run in `gateway.local.functions` sandboxes.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs

from gateway.asgi import Receive, Scope, Send
from gateway.local.functions import (
    ACCOUNT,
    NAME,
    NAME_RE,
    FunctionRef,
    FunctionSpecError,
    Handler,
    InvokeContext,
    Sandboxes,
    run_handler,
    timed_out_payload,
)

DEFAULT_TIMEOUT = 60.0
DEFAULT_CONCURRENCY = 10
DEFAULT_REGION = "us-east-1"
PAYLOAD_LIMIT = 6 * 1024 * 1024
PREFIX, SUFFIX = "/2015-03-31/functions/", "/invocations"
QUALIFIER = r"\$LATEST|[A-Za-z0-9_-]{1,128}"
FUNCTION_RE = re.compile(
    rf"^(?:arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{{12}}):function:)?"
    rf"(?P<name>{NAME})(?::(?P<qualifier>{QUALIFIER}))?$"
)
CREDENTIAL_REGION_RE = re.compile(r"Credential=[^/,]+/\d{8}/([a-z0-9-]+)/")


class InvokeError(Exception):
    """An Invoke API error, answered as AWS does: `x-amzn-ErrorType` and a JSON body."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message

    def reply(self) -> Reply:
        body = json.dumps({"Type": "User", "message": self.message}).encode()
        headers = [(b"x-amzn-errortype", self.error_type.encode())]
        return Reply(self.status, _json_headers(headers), body)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""


class InvokeApp:
    """The pure ASGI Invoke API over a fixed set of named handlers."""

    def __init__(self, functions: Mapping[str, Handler], timeout: float, concurrency: int) -> None:
        self.functions = MappingProxyType(dict(functions))
        self.timeout = timeout
        self._sandboxes = Sandboxes(concurrency)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self._sandboxes.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            ref = self._function_ref(scope)
            event = _parse_event(await _read_body(receive))
            kind = _header(scope, b"x-amz-invocation-type") or "RequestResponse"
            if kind == "DryRun":
                await _send(send, Reply(204, []))
                return
            if kind == "Event":
                # Lambda answers 202 at once and runs the function after.
                await _send(send, Reply(202, [(b"content-length", b"0")]))
                await self._call(ref, event)
                return
            reply = await self._call(ref, event)
        except InvokeError as error:
            reply = error.reply()
        await _send(send, reply)

    def _function_ref(self, scope: Scope) -> FunctionRef:
        path: str = scope["path"]
        if scope["method"] != "POST" or not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
            raise InvokeError(404, "UnknownOperationException", f"no operation at {path}")
        named = path[len(PREFIX) : -len(SUFFIX)]
        found = FUNCTION_RE.match(named)
        if found is None:
            raise InvokeError(400, "ValidationException", f"{named!r} is not a function name")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        qualifier = (query.get("Qualifier") or [None])[-1]
        derived = found["qualifier"]
        if derived and qualifier and derived != qualifier:
            raise InvokeError(
                400,
                "InvalidParameterValueException",
                "The derived qualifier from the function name does not match the specified "
                "qualifier.",
            )
        region = found["region"] or _caller_region(scope)
        account = found["account"] or ACCOUNT
        ref = FunctionRef(found["name"], derived or qualifier, region, account)
        if ref.name not in self.functions:
            raise InvokeError(404, "ResourceNotFoundException", f"Function not found: {ref.arn}")
        return ref

    async def _call(self, ref: FunctionRef, event: Any) -> Reply:
        request_id = str(uuid.uuid4())
        context = InvokeContext(ref, request_id, self.timeout)
        handler = self.functions[ref.name]
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._sandboxes.get(), run_handler, handler, event, context)
        try:
            body, failed = await asyncio.wait_for(work, self.timeout)
        except TimeoutError:
            body, failed = timed_out_payload(request_id, self.timeout), True
        headers = [
            (b"x-amzn-requestid", request_id.encode()),
            (b"x-amz-executed-version", b"$LATEST"),
        ]
        if failed:
            headers.append((b"x-amz-function-error", b"Unhandled"))
        return Reply(200, _json_headers(headers), body)


def create_invoke_app(
    functions: Mapping[str, Handler],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> InvokeApp:
    """An ASGI Invoke API calling `functions[name](event, context)`; past `timeout`, a
    function error as Lambda's `Sandbox.Timedout` (the thread is left to finish)."""
    for name in functions:
        if not NAME_RE.match(name):
            raise FunctionSpecError(f"{name!r} is not a Lambda function name")
    return InvokeApp(functions, timeout, concurrency)


def _parse_event(payload: bytes) -> Any:
    if not payload.strip():
        return {}
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise InvokeError(
            400, "InvalidRequestContentException", f"Could not parse request body into json: {exc}"
        ) from exc


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > PAYLOAD_LIMIT:
            raise InvokeError(
                413,
                "RequestEntityTooLargeException",
                f"Request must be smaller than {PAYLOAD_LIMIT} bytes for the Invoke operation",
            )
        if not message.get("more_body", False):
            return bytes(body)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _caller_region(scope: Scope) -> str:
    """The region the caller signed for (boto3's), so error ARNs read as they would on AWS."""
    found = CREDENTIAL_REGION_RE.search(_header(scope, b"authorization") or "")
    return found.group(1) if found else DEFAULT_REGION


def _json_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), *headers]


async def _send(send: Send, reply: Reply) -> None:
    headers = list(reply.headers)
    if reply.status != 204 and not any(name == b"content-length" for name, _ in headers):
        headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
