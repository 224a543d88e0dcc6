"""A routes.yaml written in place is never served half-written: the prefix of a table is often
a valid, smaller table without the later routes and their `auth`."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.admission.auth import hash_api_key
from gateway.app import create_app
from legacy_stub.app import create_app as legacy_app
from tests.support.servers import free_port, serve_in_thread, serve_process, write_config

KEY = "partial-write-test-key-0123456789"
WRITES = 4
PAUSE_SECONDS = 0.2  # the writer's pause mid-file: shorter than the 0.5 s default settle


@pytest.fixture(scope="module")
def legacy() -> Iterator[str]:
    with serve_in_thread(legacy_app()) as url:
        yield url


def public_part(legacy: str) -> str:
    return f"""
targets:
  legacy: {{url: "{legacy}"}}
routes:
  - name: everything-else
    path: /
    target: legacy
"""


def protected_part() -> str:
    return f"""
  - name: admin
    path: /echo/admin
    target: legacy
    auth:
      api_keys: {{keys: ["{hash_api_key(KEY)}"]}}
"""


def write_in_place(path: Path, first: str, rest: str) -> None:
    """As `cat > routes.yaml` or an editor saving in place: truncate, write, pause, write."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write(first)
        handle.flush()
        time.sleep(PAUSE_SECONDS)
        handle.write(rest)


def test_a_valid_prefix_written_in_place_never_serves_the_protected_path(
    legacy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a gateway polling its file every 100 ms, the admin route protected by an API key
    monkeypatch.setenv("GATEWAY_CONFIG_TTL", "0.1")
    monkeypatch.delenv("GATEWAY_CONFIG_SETTLE", raising=False)
    path = Path(write_config(tmp_path, public_part(legacy) + protected_part()))
    with serve_in_thread(create_app(str(path))) as gateway:
        # WHEN the file is rewritten in place several times, with a pause after a valid prefix
        def rewrite() -> None:
            for index in range(WRITES):
                comment = f"# rewrite {index}\n"
                write_in_place(path, comment + public_part(legacy), protected_part())
                time.sleep(0.1)

        writer = threading.Thread(target=rewrite)
        statuses: Counter[int] = Counter()
        with httpx.Client(base_url=gateway, timeout=5) as client:
            writer.start()
            deadline = time.monotonic() + 10
            while (writer.is_alive() or sum(statuses.values()) < 50) and (
                time.monotonic() < deadline and sum(statuses.values()) < 2000
            ):
                statuses[client.get("/echo/admin").status_code] += 1
            writer.join()
            time.sleep(1.0)  # past the settle interval: the last whole table is in use
            final = client.get("/_gateway/routes").json()
            keyed = client.get("/echo/admin", headers={"x-api-key": KEY})
    # THEN no request to the protected path was answered by the catch-all
    assert statuses[200] == 0, statuses
    assert set(statuses) == {401}
    assert [route["name"] for route in final["routes"]] == ["everything-else", "admin"]
    assert keyed.status_code == 200


def test_a_reload_that_drops_routes_or_auth_is_logged_loudly(
    legacy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a gateway serving a public and a protected route
    monkeypatch.setenv("GATEWAY_CONFIG_TTL", "0.1")
    monkeypatch.setenv("GATEWAY_CONFIG_SETTLE", "0.05")
    path = Path(write_config(tmp_path, public_part(legacy) + protected_part()))
    with serve_in_thread(create_app(str(path))) as gateway, caplog.at_level(logging.WARNING):
        # WHEN the table is replaced (atomically) by one without the protected route
        temporary = path.with_suffix(".tmp")
        temporary.write_text(public_part(legacy))
        temporary.replace(path)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if httpx.get(f"{gateway}/echo/admin").status_code == 200:
                break
            time.sleep(0.05)
    # THEN the reload went through, and a WARNING named the route it dropped
    dropped = [r for r in caplog.records if "drops 1 route(s): admin" in r.getMessage()]
    assert dropped and dropped[0].levelno == logging.WARNING


def test_sighup_mid_write_never_loads_the_prefix(legacy: str, tmp_path: Path) -> None:
    # GIVEN a gateway process that reloads only on SIGHUP, the admin route protected
    path = Path(write_config(tmp_path, public_part(legacy) + protected_part()))
    port = free_port()
    argv = ["-m", "uvicorn", "gateway.app:app", "--port", str(port), "--no-proxy-headers"]
    env = {"GATEWAY_CONFIG": str(path), "GATEWAY_CONFIG_TTL": "3600", "GATEWAY_ACCESS_LOG": "off"}
    with serve_process(argv, port, env=env) as process, httpx.Client(timeout=5) as client:
        url = f"http://127.0.0.1:{port}"
        before = client.get(f"{url}/_gateway/routes").json()["version"]
        # WHEN the file is written in place and SIGHUP arrives while only a prefix is written
        with path.open("w", encoding="utf-8") as handle:
            handle.write("# rewritten\n" + public_part(legacy))
            handle.flush()
            process.send_signal(signal.SIGHUP)
            during = [client.get(f"{url}/echo/admin").status_code for _ in range(20)]
            time.sleep(PAUSE_SECONDS)
            handle.write(protected_part())
        after = [client.get(f"{url}/echo/admin").status_code for _ in range(20)]
        # ...and once more after the write is done
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        version = before
        while version == before and time.monotonic() < deadline:
            time.sleep(0.1)
            version = client.get(f"{url}/_gateway/routes").json()["version"]
        final = client.get(f"{url}/echo/admin").status_code
    # THEN the prefix was never served: the protected path stayed 401 throughout
    assert set(during) == {401} and set(after) == {401}
    assert version != before and final == 401
