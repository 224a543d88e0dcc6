"""The dashboard at /_gateway/ in a real browser (Debian's chromium, driven by chromium-driver):
no console error, nothing loaded from outside the gateway, the demo's routes with their stages,
and a weight changed by `gateway shift` shown within seconds. The screenshot is kept in
`.artifacts/dashboard.png` (ignored by git)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.cli.main import main
from tests.support.servers import serve_in_thread, write_config

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".artifacts"
CHROMIUM, DRIVER = "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900",
)  # fmt: skip
pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def demo(
    tmp_path: Path, legacy_url: str, orders_v2_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """The demo's routes.yaml, its targets pointed at the loopback services, served."""
    monkeypatch.setenv("GATEWAY_CONFIG_TTL", "0.1")
    monkeypatch.setenv("GATEWAY_ACCESS_LOG", "off")
    text = (ROOT / "routes.yaml").read_text()
    text = text.replace("http://127.0.0.1:8001", legacy_url)
    text = text.replace("http://127.0.0.1:8002", orders_v2_url)
    path = write_config(tmp_path, text)
    with serve_in_thread(create_app(path)) as url:
        yield url, path


def wait_for(driver: Any, script: str, timeout: float = 10.0) -> Any:
    """Poll SCRIPT in the page until it returns something truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = driver.execute_script(script)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"the page never showed it: {script}")


def requested_urls(driver: Any) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


STAGES = """return Object.fromEntries([...document.querySelectorAll('[data-stage]')].map(
  e => [e.closest('tr').dataset.route, e.dataset.stage]))"""
ORDERS_V2_CELL = """const row = document.querySelector(
    'tr[data-route="orders"][data-target="orders-v2"]');
  return row && row.textContent.includes('orders-v2 30%') && row.textContent"""


def test_the_dashboard_shows_the_routes_live_and_loads_nothing_from_outside(
    browser: Any, demo: tuple[str, str]
) -> None:
    # GIVEN the demo table served by a gateway
    url, path = demo
    # WHEN the page is opened
    browser.get(f"{url}/_gateway/")
    stages = wait_for(browser, STAGES)
    # THEN every route is there with its stage
    assert stages == {
        "orders": "canary",
        "orders-canary-optin": "retired",
        "orders-v2-preview": "retired",
        "orders-lambda": "retired",
        "everything-else": "legacy",
    }
    # WHEN the weight is shifted on disk  THEN the page shows it within seconds, no reload
    assert main(["shift", path, "orders", "orders-v2=30"]) == 0
    assert "orders-v2 30%" in wait_for(browser, ORDERS_V2_CELL)
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    # AND no console error, and every request went to the gateway itself
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    urls = requested_urls(browser)
    assert f"{url}/_gateway/" in urls and f"{url}/_gateway/dashboard.json" in urls
    assert [u for u in urls if not u.startswith(url + "/")] == []
