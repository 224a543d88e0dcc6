"""What a server imports before its first request: the first request must not block the loop
with an import (~110 ms for aiohttp), while other requests wait on Redis within
`state.timeout` (they fell back to local limits on a fresh `make run`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import write_config

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import asyncio, json, sys
from gateway.app import create_app
app = create_app(sys.argv[1])
before = "aiohttp" in sys.modules
async def start():
    async with app.router.lifespan_context(app):
        pass
asyncio.run(start())
print(json.dumps([before, "aiohttp" in sys.modules]))
"""
HTTP = (
    'targets: {legacy: {url: "http://127.0.0.1:9"}}\nroutes: [{name: all, path: /, target: legacy}]'
)
LAMBDA = (
    'targets: {fn: {lambda: "arn:aws:lambda:eu-west-1:123456789012:function:f"}}\n'
    "routes: [{name: all, path: /, target: fn}]"
)


@pytest.mark.parametrize(("table", "expected"), [(HTTP, [False, True]), (LAMBDA, [False, False])])
def test_a_server_imports_aiohttp_at_startup_only_for_http_targets(
    tmp_path: Path, table: str, expected: list[bool]
) -> None:
    # GIVEN a table  WHEN a server starts (its lifespan), in a fresh interpreter
    config = write_config(tmp_path, table)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, config],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={
            "PATH": "/usr/bin:/bin",
            "GATEWAY_ACCESS_LOG": "off",
            "AWS_DEFAULT_REGION": "eu-west-1",
        },
    )
    # THEN aiohttp was not there at import (a Lambda cold start defers it), and is there
    # once a server with an http target has started
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected
