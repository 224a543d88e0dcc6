"""`/_stub/*`: deterministic misbehaviours for the gateway's tests.

There is no `/_stub/reset`: an ASGI app cannot drop its connection without a
response (uvicorn answers 500 when the app fails before `http.response.start`).
"""

import asyncio
import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
BODYLESS_STATUSES = frozenset({204, 205, 304})
PATTERN = bytes(range(256))
GZIP_PLAIN = json.dumps({"compressed": True, "filler": "legacy " * 64}).encode()
GZIP_BODY = gzip.compress(GZIP_PLAIN, mtime=0)

router = APIRouter(prefix="/_stub")


def pattern_slice(offset: int, length: int) -> bytes:
    """`length` bytes of the endless 0x00..0xff pattern, starting at `offset`."""
    start = offset % len(PATTERN)
    repeats = (start + length) // len(PATTERN) + 1
    return (PATTERN * repeats)[start : start + length]


async def _pattern_chunks(size: int, chunk: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        length = min(chunk, size - sent)
        yield pattern_slice(sent, length)
        sent += length


@router.api_route("/status/{code}", methods=ANY_METHOD)
async def status(code: Annotated[int, Path(ge=200, le=599)]) -> Response:
    if code in BODYLESS_STATUSES:
        return Response(status_code=code)
    body = json.dumps({"status": code}).encode()
    return Response(body, status_code=code, media_type="application/json")


@router.get("/slow")
async def slow(seconds: Annotated[float, Query(ge=0, le=120)] = 1.0) -> dict[str, Any]:
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@router.get("/download")
async def download(
    size: Annotated[int, Query(ge=0)],
    chunk: Annotated[int, Query(ge=1, le=8 * 1024 * 1024)] = 65536,
) -> StreamingResponse:
    return StreamingResponse(
        _pattern_chunks(size, chunk),
        media_type="application/octet-stream",
        headers={"content-length": str(size)},
    )


@router.api_route("/upload", methods=["POST", "PUT"])
async def upload(request: Request) -> dict[str, Any]:
    digest = hashlib.sha256()
    total = 0
    async for chunk in request.stream():
        digest.update(chunk)
        total += len(chunk)
    return {"bytes": total, "sha256": digest.hexdigest()}


@router.get("/cookies")
async def cookies() -> Response:
    response = Response(b'{"cookies":["a","b"]}', media_type="application/json")
    response.raw_headers += [
        (b"set-cookie", b"a=1; Path=/"),
        (b"set-cookie", b"b=2; Path=/; HttpOnly"),
        (b"x-multi", b"one"),
        (b"x-multi", b"two"),
    ]
    return response


@router.get("/gzip")
async def gzipped() -> Response:
    return Response(GZIP_BODY, media_type="application/json", headers={"content-encoding": "gzip"})
