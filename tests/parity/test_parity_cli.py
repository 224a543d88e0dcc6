"""`gateway parity URL [ROUTE]` against a running gateway, and `gateway parity ignore`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config.load import load_config
from tests.parity.loopback import OrderService, settled
from tests.parity.test_shadow_e2e import run, table
from tests.support.gateways import GatewayFactory
from tests.support.servers import serve_in_thread


def test_parity_names_the_missing_field_with_an_example_and_no_secret(
    start_gateway: GatewayFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a candidate that drops a field, behind a running gateway
    candidate = OrderService(mode="drops")
    with serve_in_thread(OrderService()) as legacy_url, serve_in_thread(candidate) as cand_url:
        gateway = start_gateway(table(legacy_url, cand_url))
        run(gateway, "/api/orders/7?token=sekrit-query", count=10)
        settled(gateway, "orders", 10)

        # WHEN the parity is read, as text and as JSON
        text_code = main(["parity", gateway, "orders", "--window", "5m"])
        text, _ = capsys.readouterr()
        json_code = main(["parity", gateway, "-o", "json"])
        as_json, _ = capsys.readouterr()

    # THEN the text names the route's score, the path, its kind and an example
    assert (text_code, json_code) == (0, 0)
    assert "orders  parity 0.00% over 5m" in text
    row = next(line for line in text.splitlines() if "body.status" in line)
    assert "missing" in row and "real" in row and '"open"' in row
    assert "sekrit" not in text + as_json
    assert json.loads(as_json)["routes"][0]["counts"]["compared"] == 10


def test_parity_says_why_when_the_gateway_cannot_be_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN no gateway listening  WHEN parity is asked  THEN exit 1 with a one-line reason
    code = main(["parity", "http://127.0.0.1:9"])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("gateway parity: cannot read http://127.0.0.1:9/_gateway/parity")


ROUTES = """\
# the demo's table
targets:
  legacy: {url: "http://127.0.0.1:9"}   # the monolith
  orders-v2: {url: "http://127.0.0.1:9"}
routes:
  - name: orders
    path: /api/orders
    target: legacy
    shadow:
      target: orders-v2   # the candidate
      compare:
        ignore: [body.meta.request_id]   # stamped per answer
"""


@pytest.mark.parametrize(
    ("text", "expected_line"),
    [
        (ROUTES, "        ignore: [body.meta.request_id, body.meta.at]   # stamped per answer"),
        (
            ROUTES.replace(
                "      compare:\n        ignore: [body.meta.request_id]   # stamped per answer\n",
                "",
            ),
            "        ignore: [body.meta.at]",
        ),
    ],
    ids=["appended", "created"],
)
def test_ignore_adds_the_path_keeping_comments_and_layout(
    text: str, expected_line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a table with comments and a shadowed route
    path = tmp_path / "routes.yaml"
    path.write_text(text)

    # WHEN a path is ignored
    code = main(["parity", "ignore", str(path), "orders", "body.meta.at"])

    # THEN only the ignore list changed, comments kept, and the table still loads
    after = path.read_text()
    assert code == 0, capsys.readouterr().err
    assert expected_line in after.splitlines()
    kept = [line for line in text.splitlines() if "ignore" not in line and "compare" not in line]
    assert all(line in after.splitlines() for line in kept)
    shadow = load_config(str(path)).routes[0].shadow
    assert shadow is not None and shadow.compare.ignore[-1] == "body.meta.at"


@pytest.mark.parametrize(
    ("route", "field", "says"),
    [("nope", "body.x", "has no shadow"), ("orders", "meta", "must start with")],
    ids=["unknown-route", "bad-path"],
)
def test_ignore_refuses_and_leaves_the_file(
    route: str, field: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a table  WHEN a bad ignore is asked  THEN exit 1, the reason, the file unchanged
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    code = main(["parity", "ignore", str(path), route, field])
    assert code == 1
    assert says in capsys.readouterr().err
    assert path.read_text() == ROUTES
