"""A local AWS Lambda Invoke API: named handlers called in this process, as Lambda calls them.

`gateway local-lambda --function orders-v2=services.orders_v2.app:handler` serves
`POST /2015-03-31/functions/{name}/invocations`, so boto3 (a target's `endpoint_url`, or
AWS_ENDPOINT_URL_LAMBDA) invokes the function on this machine with no AWS account.

Each worker thread stands in for a Lambda sandbox: it keeps one event loop of its own for
its life, so a Mangum handler (which drives the current loop itself) works, and objects it
binds to that loop survive from one invocation to the next as they do on Lambda.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import re
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs

from gateway.asgi import Receive, Scope, Send
from gateway.durations import parse_duration

# The handler gets whatever JSON the caller sent (an ALB event, for the gateway).
Handler = Callable[[Any, Any], Any]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9001
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONCURRENCY = 10
DEFAULT_REGION = "us-east-1"
ACCOUNT = "000000000000"
PAYLOAD_LIMIT = 6 * 1024 * 1024
PREFIX, SUFFIX = "/2015-03-31/functions/", "/invocations"
NAME = r"[A-Za-z0-9_-]{1,64}"
QUALIFIER = r"\$LATEST|[A-Za-z0-9_-]{1,128}"
FUNCTION_RE = re.compile(
    rf"^(?:arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{{12}}):function:)?"
    rf"(?P<name>{NAME})(?::(?P<qualifier>{QUALIFIER}))?$"
)
NAME_RE = re.compile(rf"^{NAME}$")
CREDENTIAL_REGION_RE = re.compile(r"Credential=[^/,]+/\d{8}/([a-z0-9-]+)/")

logger = logging.getLogger("gateway.local_lambda")


class FunctionSpecError(ValueError):
    """A `NAME=module.path:attr` that does not name a callable handler."""


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


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """Which function an invoke names, in any of the forms Lambda accepts."""

    name: str
    qualifier: str | None
    region: str
    account: str = ACCOUNT

    @property
    def arn(self) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account}:function:{self.name}"
        return f"{arn}:{self.qualifier}" if self.qualifier else arn


class InvokeContext:
    """The `context` a handler receives, with the attributes of the Python runtime's."""

    def __init__(self, ref: FunctionRef, aws_request_id: str, timeout: float) -> None:
        self.function_name = ref.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = ref.arn
        self.memory_limit_in_mb = "128"
        self.aws_request_id = aws_request_id
        self.log_group_name = f"/aws/lambda/{ref.name}"
        self.log_stream_name = "local"
        self.identity: object = None
        self.client_context: object = None
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(slots=True)
class _Sandboxes:
    """Worker threads, each with the event loop it keeps; made on first use, closed once."""

    size: int
    pool: ThreadPoolExecutor | None = None
    loops: list[asyncio.AbstractEventLoop] = field(default_factory=list)

    def get(self) -> ThreadPoolExecutor:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.size, "local-lambda", initializer=self._new_loop)
        return self.pool

    def _new_loop(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loops.append(loop)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        while self.loops:
            self.loops.pop().close()


class InvokeApp:
    """The pure ASGI Invoke API over a fixed set of named handlers."""

    def __init__(self, functions: Mapping[str, Handler], timeout: float, concurrency: int) -> None:
        self.functions = MappingProxyType(dict(functions))
        self.timeout = timeout
        self._sandboxes = _Sandboxes(concurrency)

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
        work = loop.run_in_executor(self._sandboxes.get(), _run, handler, event, context)
        try:
            body, failed = await asyncio.wait_for(work, self.timeout)
        except TimeoutError:
            body, failed = _timed_out(request_id, self.timeout), True
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


def _run(handler: Handler, event: Any, context: InvokeContext) -> tuple[bytes, bool]:
    """On a sandbox thread: call the handler -> (JSON payload, whether it is an error)."""
    try:
        result = handler(event, context)
    except BaseException as exc:  # a handler's SystemExit must not reach the server's loop
        logger.warning("function %s raised", context.function_name, exc_info=exc)
        return _error_payload(exc, context.aws_request_id), True
    try:
        return json.dumps(result).encode(), False
    except (TypeError, ValueError) as exc:
        message = f"Unable to marshal response: {exc}"
        return _payload(message, "Runtime.MarshalError", context.aws_request_id, []), True


def _error_payload(exc: BaseException, request_id: str) -> bytes:
    # The handler's own frames only: the first one is `_run`, which called it.
    tb = exc.__traceback__.tb_next if exc.__traceback__ else None
    stack = traceback.format_list(traceback.extract_tb(tb))
    return _payload(str(exc), type(exc).__name__, request_id, stack)


def _timed_out(request_id: str, timeout: float) -> bytes:
    message = f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"
    return _payload(message, "Sandbox.Timedout", request_id, [])


def _payload(message: str, error_type: str, request_id: str, stack: list[str]) -> bytes:
    error = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack,
    }
    return json.dumps(error).encode()


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


def load_functions(specs: Iterable[str]) -> dict[str, Handler]:
    """`["NAME=module.path:attr", ...]` -> {NAME: handler}; FunctionSpecError says what is wrong."""
    functions: dict[str, Handler] = {}
    for spec in specs:
        name, handler = _load_function(spec)
        if name in functions:
            raise FunctionSpecError(f"{spec!r}: function {name!r} is given twice")
        functions[name] = handler
    return functions


def _load_function(spec: str) -> tuple[str, Handler]:
    usage = "write NAME=module.path:attr, e.g. orders-v2=services.orders_v2.app:handler"
    name, equals, target = spec.partition("=")
    module_name, colon, attr = target.strip().partition(":")
    if not equals or not colon or not module_name or not attr:
        raise FunctionSpecError(f"{spec!r}: {usage}")
    name = name.strip()
    if not NAME_RE.match(name):
        raise FunctionSpecError(f"{spec!r}: {name!r} is not a Lambda function name")
    try:
        found: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise FunctionSpecError(f"{spec!r}: cannot import {module_name!r} ({exc})") from exc
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError as exc:
            raise FunctionSpecError(f"{spec!r}: {module_name!r} has no {attr!r}") from exc
    if not callable(found):
        raise FunctionSpecError(f"{spec!r}: {module_name}:{attr} is not callable")
    return name, found


def serve(
    specs: Iterable[str],
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Serve the Invoke API for `NAME=module.path:attr` handlers until interrupted."""
    _serve(create_invoke_app(load_functions(specs), timeout=timeout), host, port)


def _serve(app: InvokeApp, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info", lifespan="on")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `gateway local-lambda`."""
    parser.add_argument(
        "-f",
        "--function",
        dest="functions",
        action="append",
        required=True,
        metavar="NAME=MODULE:ATTR",
        help="a function to serve, e.g. orders-v2=services.orders_v2.app:handler (repeatable)",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    parser.add_argument(
        "--timeout",
        type=_duration,
        default=DEFAULT_TIMEOUT,
        help="each function's timeout, e.g. 30s (default 60s)",
    )
    parser.add_argument(
        "--app-dir", default=".", help="directory searched first for handler modules"
    )


def run(args: argparse.Namespace) -> int:
    """`gateway local-lambda ...`: serve until interrupted; 2 when a --function is wrong."""
    sys.path.insert(0, str(Path(args.app_dir).resolve()))
    try:
        app = create_invoke_app(load_functions(args.functions), timeout=args.timeout)
    except FunctionSpecError as exc:
        print(f"gateway local-lambda: {exc}", file=sys.stderr)
        return 2
    endpoint = f"http://{args.host}:{args.port}"
    for name in app.functions:
        print(f"function {name}: POST {endpoint}{PREFIX}{name}{SUFFIX}", file=sys.stderr)
    print(f"point boto3 here with AWS_ENDPOINT_URL_LAMBDA={endpoint}", file=sys.stderr)
    _serve(app, args.host, args.port)
    return 0


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(float(text) if text.replace(".", "", 1).isdigit() else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than zero")
    return seconds
