"""The functions a local Invoke API serves: loaded from `NAME=module.path:attr` specs, and
called as Lambda calls them, with a runtime-like `context`, each on a sandbox thread.

Each worker thread stands in for a Lambda sandbox: it keeps one event loop of its own for
its life, so a Mangum handler (which drives the current loop itself) works, and objects it
binds to that loop survive from one invocation to the next as they do on Lambda.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import re
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

# The handler gets whatever JSON the caller sent (an ALB event, for the gateway).
Handler = Callable[[Any, Any], Any]

ACCOUNT = "000000000000"
NAME = r"[A-Za-z0-9_-]{1,64}"
NAME_RE = re.compile(rf"^{NAME}$")

# Named for the `gateway local-lambda` command these functions run under, as it always was.
logger = logging.getLogger("gateway.local_lambda")


class FunctionSpecError(ValueError):
    """A `NAME=module.path:attr` that does not name a callable handler."""


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
class Sandboxes:
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


def run_handler(handler: Handler, event: Any, context: InvokeContext) -> tuple[bytes, bool]:
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
    # The handler's own frames only: the first one is `run_handler`, which called it.
    tb = exc.__traceback__.tb_next if exc.__traceback__ else None
    stack = traceback.format_list(traceback.extract_tb(tb))
    return _payload(str(exc), type(exc).__name__, request_id, stack)


def timed_out_payload(request_id: str, timeout: float) -> bytes:
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
