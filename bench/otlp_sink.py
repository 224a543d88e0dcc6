"""A tiny OTLP/HTTP sink for ``proxy_bench.py``'s ``gateway+tracing`` variant.

Answers 200 to every ``POST /v1/traces`` (protobuf, gzip or not) and counts what it got: a
POST, its bytes and the spans in it. Any ``GET`` answers those counts as JSON, so the bench
can check that the spans were really exported and not dropped by a full queue. It runs as
its own process so its CPU is not billed to the gateway.

    python bench/otlp_sink.py --port 4318
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

TRACES_PATH = "/v1/traces"
# An empty ExportTraceServiceResponse is zero bytes of protobuf.
EMPTY_RESPONSE = b""


@dataclass
class Counts:
    posts: int = 0
    bytes: int = 0
    spans: int = 0
    unparsed: int = 0


def count_spans(payload: bytes) -> int:
    request = ExportTraceServiceRequest()
    request.ParseFromString(payload)
    return sum(
        len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans
    )


def make_app() -> web.Application:
    counts = Counts()

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        counts.posts += 1
        counts.bytes += len(body)
        try:
            if request.headers.get("content-encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            counts.spans += count_spans(body)
        except Exception:  # a sink never fails the exporter; it just says it could not parse
            counts.unparsed += 1
        return web.Response(body=EMPTY_RESPONSE, content_type="application/x-protobuf")

    async def stats(_: web.Request) -> web.Response:
        return web.Response(text=json.dumps(asdict(counts)), content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post(TRACES_PATH, traces)
    app.router.add_get("/{tail:.*}", stats)
    return app


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        run = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
