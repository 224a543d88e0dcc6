"""100 MB both ways through a gateway process, whose peak memory must stay far below that."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, serve_process, write_config

SIZE = 100 * 1024 * 1024
CHUNK = 1024 * 1024
# The gateway may buffer a few chunks per direction; a whole body would show as ~100 MB.
ALLOWED_GROWTH_KB = 40 * 1024


def pattern(offset: int, length: int) -> bytes:
    start = offset % 256
    return (bytes(range(256)) * (length // 256 + 2))[start : start + length]


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


@pytest.fixture
def gateway_process(tmp_path: Path, legacy_url: str) -> Iterator[tuple[str, int]]:
    config = write_config(
        tmp_path,
        f"""
targets: {{legacy: {{url: "{legacy_url}", timeout: 60s}}}}
routes: [{{name: all, path: /, target: legacy}}]
""",
    )
    port = free_port()
    argv = ["-m", "uvicorn", "gateway.app:app", "--port", str(port), "--no-proxy-headers"]
    with serve_process(argv, port, env={"GATEWAY_CONFIG": config}) as process:
        yield f"http://127.0.0.1:{port}", process.pid


def upload_chunks() -> Iterator[bytes]:
    for offset in range(0, SIZE, CHUNK):
        yield pattern(offset, CHUNK)


def test_100mb_upload_and_download_stream_with_bounded_memory(
    gateway_process: tuple[str, int],
) -> None:
    url, pid = gateway_process
    with httpx.Client(base_url=url, timeout=60) as client:
        # GIVEN a warmed-up gateway process and its peak memory so far
        assert client.get("/api/users").status_code == 200
        before = peak_rss_kb(pid)
        # WHEN 100 MB are uploaded through it, streamed with no length
        uploaded = client.post("/_stub/upload", content=upload_chunks())
        # AND 100 MB are downloaded through it
        digest = hashlib.sha256()
        received = 0
        with client.stream("GET", f"/_stub/download?size={SIZE}") as response:
            for chunk in response.iter_raw():
                digest.update(chunk)
                received += len(chunk)
    # THEN every byte arrived intact both ways
    expected = hashlib.sha256(b"".join(upload_chunks())).hexdigest()
    assert uploaded.json() == {"bytes": SIZE, "sha256": expected}
    assert received == SIZE
    assert digest.hexdigest() == expected
    # AND the gateway's peak memory grew by far less than one body
    growth = peak_rss_kb(pid) - before
    assert growth < ALLOWED_GROWTH_KB, f"gateway peak RSS grew {growth} KB"
