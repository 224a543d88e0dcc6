"""`/echo/{path}`: reflect the request exactly as the ASGI server received it."""

import base64
from typing import Any

from fastapi import APIRouter, Request

ECHO_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

router = APIRouter()


@router.api_route("/echo/{path:path}", methods=ECHO_METHODS)
async def echo(request: Request) -> dict[str, Any]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
    raw_path: bytes | None = request.scope.get("raw_path")
    return {
        "method": request.method,
        "path": request.scope["path"],
        "raw_path": None if raw_path is None else raw_path.decode("latin-1"),
        "query": request.scope["query_string"].decode("latin-1"),
        "headers": [
            [name.decode("latin-1"), value.decode("latin-1")]
            for name, value in request.scope["headers"]
        ],
        "body_base64": base64.b64encode(body).decode("ascii"),
        "body_length": len(body),
    }
