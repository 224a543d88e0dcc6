"""A local AWS Lambda Invoke API: named handlers called in this process, as Lambda calls them.

`gateway local-lambda --function orders-v2=services.orders_v2.app:handler` serves
`POST /2015-03-31/functions/{name}/invocations`, so boto3 (a target's `endpoint_url`, or
AWS_ENDPOINT_URL_LAMBDA) invokes the function on this machine with no AWS account.

The Invoke API itself is `gateway.local.invoke_api`; the handlers, how they are loaded and the
sandbox threads that run them, `gateway.local.functions`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from gateway.config.units import parse_duration
from gateway.local.functions import (
    FunctionSpecError,
    load_functions,
)
from gateway.local.invoke_api import (
    DEFAULT_TIMEOUT,
    PREFIX,
    SUFFIX,
    InvokeApp,
    create_invoke_app,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9001


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
    # cold start: uvicorn only when serving
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
