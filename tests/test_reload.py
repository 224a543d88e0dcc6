"""Swapping the route table while serving: files watched, SIGHUP, S3 and SSM, Lambda TTL."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from gateway.app import create_app
from gateway.config.model import ConfigError
from gateway.config.store import S3Store, SsmStore
from gateway.reload import Reloader, RuntimeHolder
from gateway.runtime import build_runtime
from tests.support.servers import free_port, serve_in_thread, serve_process, write_config

LOAD_SECONDS = 4.0
CONCURRENCY = 8


def split_table(legacy: str, canary: str, legacy_weight: int) -> str:
    return f"""# a comment, kept by every rewrite
targets:
  legacy: {{url: "{legacy}"}}
  orders-v2: {{url: "{canary}"}}
routes:
  - name: orders
    path: /api/orders
    split: {{legacy: {legacy_weight}, orders-v2: {100 - legacy_weight}}}
"""


def replace_file(path: Path, text: str) -> None:
    """Write as an editor or a deploy would: a new file renamed over the old one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)


async def load(url: str, stop_at: float) -> tuple[Counter[int], Counter[str]]:
    statuses: Counter[int] = Counter()
    targets: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def worker() -> None:
            while time.monotonic() < stop_at:
                try:
                    response = await client.get("/api/orders")
                except httpx.HTTPError:
                    statuses[0] += 1
                    continue
                statuses[response.status_code] += 1
                targets[response.headers.get("x-gateway-target", "?")] += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return statuses, targets


def test_rewrites_under_load_drop_nothing_and_traffic_follows(
    tmp_path: Path, legacy_url: str, orders_v2_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a gateway watching its file every 100 ms, under a bounded loopback load
    monkeypatch.setenv("GATEWAY_CONFIG_TTL", "0.1")
    monkeypatch.setenv("GATEWAY_CONFIG_SETTLE", "0.05")  # replaced atomically: whole at once
    path = Path(write_config(tmp_path, split_table(legacy_url, orders_v2_url, 100)))
    with serve_in_thread(create_app(str(path))) as url:
        stop_at = time.monotonic() + LOAD_SECONDS

        async def scenario() -> tuple[Counter[int], Counter[str]]:
            running = asyncio.ensure_future(load(url, stop_at))
            # WHEN the file is rewritten many times, once broken, and ends on all-canary
            for step in range(12):
                await asyncio.sleep(0.2)
                replace_file(path, split_table(legacy_url, orders_v2_url, 100 - step % 2 * 100))
            replace_file(path, "targets: {legacy: {url: nope}}\nroutes: [")
            await asyncio.sleep(0.5)
            replace_file(path, split_table(legacy_url, orders_v2_url, 0))
            return await running

        statuses, targets = asyncio.run(scenario())
        # THEN every request got a 200, both targets served, and the last table rules
        after = [httpx.get(f"{url}/api/orders").headers["x-gateway-target"] for _ in range(20)]
    assert set(statuses) == {200}, statuses
    assert targets["legacy"] > 0 and targets["orders-v2"] > 0
    assert after == ["orders-v2"] * 20


def test_broken_file_is_refused_and_the_last_good_table_serves(
    tmp_path: Path, legacy_url: str, orders_v2_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a gateway on a valid table
    monkeypatch.setenv("GATEWAY_CONFIG_TTL", "0.1")
    monkeypatch.setenv("GATEWAY_CONFIG_SETTLE", "0.05")  # replaced atomically: whole at once
    path = Path(write_config(tmp_path, split_table(legacy_url, orders_v2_url, 100)))
    with serve_in_thread(create_app(str(path))) as url:
        before = httpx.get(f"{url}/_gateway/routes").json()
        # WHEN the file is replaced by one with a typo
        replace_file(path, split_table(legacy_url, orders_v2_url, 100).replace("split", "spilt"))
        time.sleep(0.5)
        routes = httpx.get(f"{url}/_gateway/routes").json()
        served = httpx.get(f"{url}/api/orders")
    # THEN the old version still serves, and the refusal says what and where
    assert routes["version"] == before["version"]
    assert "spilt" in routes["last_reload_error"] and ":8:" in routes["last_reload_error"]
    assert served.headers["x-gateway-target"] == "legacy"


def test_a_refused_reload_is_shown_until_the_file_is_fixed(
    tmp_path: Path, legacy_url: str, orders_v2_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a gateway on a valid table
    monkeypatch.setenv("GATEWAY_CONFIG_TTL", "0.1")
    monkeypatch.setenv("GATEWAY_CONFIG_SETTLE", "0.05")  # replaced atomically: whole at once
    good = split_table(legacy_url, orders_v2_url, 100)
    path = Path(write_config(tmp_path, good))
    with serve_in_thread(create_app(str(path))) as url:
        # WHEN a table the gateway could not run (a zero rate) replaces it, then the old one
        replace_file(path, good.replace("path: /api/orders", "path: /api/orders\n    rate: 0/s"))
        refused = wait_for_routes(url, lambda routes: routes["last_reload_error"] is not None)
        replace_file(path, good)
        fixed = wait_for_routes(url, lambda routes: routes["last_reload_error"] is None)
    # THEN the refusal named the field and line, and the fixed file cleared it
    assert ":8: routes[0:orders].rate" in refused["last_reload_error"]
    assert fixed["last_reload_error"] is None and fixed["version"] == refused["version"]


def wait_for_routes(url: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    routes: dict[str, Any] = httpx.get(f"{url}/_gateway/routes").json()
    while not done(routes) and time.monotonic() < deadline:
        time.sleep(0.05)
        routes = httpx.get(f"{url}/_gateway/routes").json()
    return routes


def test_sighup_reloads_at_once(tmp_path: Path, legacy_url: str, orders_v2_url: str) -> None:
    # GIVEN a gateway process that would not poll for an hour
    path = Path(write_config(tmp_path, split_table(legacy_url, orders_v2_url, 100)))
    port = free_port()
    argv = ["-m", "uvicorn", "gateway.app:app", "--port", str(port), "--no-proxy-headers"]
    env = {"GATEWAY_CONFIG": str(path), "GATEWAY_CONFIG_TTL": "3600", "GATEWAY_ACCESS_LOG": "off"}
    with serve_process(argv, port, env=env) as process:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/api/orders").headers["x-gateway-target"] == "legacy"
        # WHEN the file changes and the process gets SIGHUP
        replace_file(path, split_table(legacy_url, orders_v2_url, 0))
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        target = "legacy"
        while target == "legacy" and time.monotonic() < deadline:
            time.sleep(0.05)
            target = httpx.get(f"{url}/api/orders").headers["x-gateway-target"]
    # THEN the new table serves
    assert target == "orders-v2"


def reloader_for(source: S3Store | SsmStore) -> Reloader:
    from gateway.config.store import load_from

    return Reloader(source, RuntimeHolder(build_runtime(load_from(source))), ttl=60)


def test_s3_config_swaps_when_valid_and_keeps_the_old_when_not(
    aws: str, legacy_url: str, orders_v2_url: str
) -> None:
    # GIVEN a table in an S3 bucket (moto's server on loopback)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="gateway-config")
    s3.put_object(
        Bucket="gateway-config", Key="routes.yaml", Body=split_table(legacy_url, orders_v2_url, 90)
    )
    reloader = reloader_for(S3Store("s3://gateway-config/routes.yaml"))
    first = reloader.holder.current.config.version
    # WHEN nothing changed, then a broken object, then a valid new one is read
    unchanged = reloader.check()
    s3.put_object(Bucket="gateway-config", Key="routes.yaml", Body=b"routes: [")
    reloader.check()
    kept = reloader.holder.current.config.version
    error = reloader.last_error
    s3.put_object(
        Bucket="gateway-config", Key="routes.yaml", Body=split_table(legacy_url, orders_v2_url, 50)
    )
    reloader.check()
    # THEN the broken one was refused with a reason, the valid one swapped in
    assert unchanged == [] and kept == first
    assert error is not None and "s3://gateway-config/routes.yaml" in error
    assert reloader.holder.current.config.routes[0].split == (("legacy", 50.0), ("orders-v2", 50.0))
    assert reloader.last_error is None


def test_ssm_config_swaps_when_valid_and_keeps_the_old_when_not(
    aws: str, legacy_url: str, orders_v2_url: str
) -> None:
    # GIVEN a table in an SSM parameter
    ssm = boto3.client("ssm")
    name = "/gateway/routes"
    ssm.put_parameter(Name=name, Value=split_table(legacy_url, orders_v2_url, 90), Type="String")
    reloader = reloader_for(SsmStore(f"ssm:{name}"))
    # WHEN a new version with an unknown target arrives, then a valid one
    bad = split_table(legacy_url, orders_v2_url, 90).replace("orders-v2: 10", "orders-v3: 10")
    ssm.put_parameter(Name=name, Value=bad, Type="String", Overwrite=True)
    reloader.check()
    refused = (reloader.holder.current.config.routes[0].split, reloader.last_error)
    ssm.put_parameter(
        Name=name, Value=split_table(legacy_url, orders_v2_url, 0), Type="String", Overwrite=True
    )
    reloader.check()
    # THEN the bad version was refused naming the problem, and the good one serves
    assert refused[0] == (("legacy", 90.0), ("orders-v2", 10.0))
    assert refused[1] is not None and "orders-v3" in refused[1]
    assert reloader.holder.current.config.routes[0].split == (("legacy", 0.0), ("orders-v2", 100.0))


@pytest.mark.parametrize("name", ["GATEWAY_CONFIG_TTL", "GATEWAY_CONFIG_SETTLE"], ids=str.lower)
@pytest.mark.parametrize("value", ["soon", "nan", "-1"], ids=["word", "nan", "negative"])
def test_a_bad_reload_setting_is_a_config_problem_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    # GIVEN a valid table and a bad reload setting in the environment
    path = write_config(tmp_path, "targets: {l: {url: 'http://127.0.0.1:1'}}\n"
                        "routes: [{name: r, path: /, target: l}]\n")  # fmt: skip
    monkeypatch.setenv(name, value)
    # WHEN the gateway is built
    with pytest.raises(ConfigError) as refused:
        create_app(path)
    # THEN the refusal names the variable and the value
    assert f"{name}:0: environment: '{value}'" in str(refused.value)
