"""`gateway serve`: uvicorn with the settings the gateway needs, and nothing to remember.

- uvloop and httptools where installed (uvicorn's `auto`), or `--http h11`;
- no proxy-header rewriting: the gateway reads X-Forwarded-For itself, and believes it only
  from `trusted_proxies`;
- no Date or Server header of uvicorn's own, so the upstream's come through once. An answer
  that has no Date (an upstream that sent none, the gateway's own errors, the admin API) gets
  one here: RFC 9110 §6.6.1 asks an intermediary with a clock to add it;
- uvicorn's access log off (the gateway writes its own JSON line per request); uvicorn's
  error log and the gateway's warnings (reloads, breakers) on stderr.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from email.utils import formatdate
from typing import Any

from gateway.asgi import ASGIApp, Message, Receive, Scope, Send
from gateway.config.load import load_config
from gateway.config.model import ConfigError

CONFIG_ENV = "GATEWAY_CONFIG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="the route table (sets GATEWAY_CONFIG)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--http",
        choices=("auto", "httptools", "h11"),
        default="auto",
        help="uvicorn's HTTP parser (auto: httptools where installed)",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn's and the gateway's")


def run(args: argparse.Namespace) -> int:
    try:
        # cold start: uvicorn only when serving
        import uvicorn
    except ImportError:
        needs = "gateway serve needs uvicorn: pip install 'strangler-gateway[serve]'"
        print(needs, file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"--workers must be 1 or more, not {args.workers}", file=sys.stderr)
        return 2
    if args.file:
        os.environ[CONFIG_ENV] = args.file
    # A file table is checked here, in the parent, so a broken file is one clear message and
    # exit 1 rather than a traceback from every worker.
    path = os.environ.get(CONFIG_ENV) or "routes.yaml"
    if not path.startswith(("s3://", "ssm:")):
        try:
            load_config(path)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
    uvicorn.run(
        "gateway.cli.serve:served_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=args.http,
        loop="auto",
        proxy_headers=False,
        server_header=False,
        date_header=False,
        access_log=False,
        log_level=args.log_level,
        log_config=log_config(args.log_level),
    )
    return 0


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's own logging setup, plus the gateway's loggers on the same stderr handler."""
    # cold start: uvicorn only when serving
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["gateway"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def served_app() -> ASGIApp:
    """The factory uvicorn calls in each worker: the gateway, with a Date on every answer."""
    # cold start: the app (FastAPI, aiohttp) only for `gateway serve`, not every verb
    from gateway.app import create_app

    return with_date(create_app())


def with_date(app: ASGIApp) -> ASGIApp:
    """`app`, adding a Date header to an answer that has none."""

    async def dated(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if not any(name.lower() == b"date" for name, _ in headers):
                    message = {**message, "headers": [*headers, (b"date", _now())]}
            await send(message)

        await app(scope, receive, send_dated)

    return dated


_last: tuple[int, bytes] = (0, b"")


def _now() -> bytes:
    """The HTTP date of this second, formatted once a second."""
    global _last  # noqa: PLW0603 - a per-process cache of one immutable value
    second = int(time.time())
    if _last[0] != second:
        _last = (second, formatdate(second, usegmt=True).encode("ascii"))
    return _last[1]
