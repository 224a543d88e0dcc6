"""`gateway diff OLD NEW`: added and removed routes and the traffic they take, every changed
field in the words of routes.yaml, and `--exit-code` for CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.main import main

BASE = """\
targets:
  legacy:
    url: http://legacy:8001
    timeout: 10s
  orders-v2: {url: "http://v2:8002"}
routes:
  - name: orders
    path: /api/orders
    split: {legacy: 90, orders-v2: 10}
  - name: everything-else
    path: /
    target: legacy
"""

USERS_ROUTE = """\
  - name: users-v2
    path: /api/users
    target: orders-v2
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(tmp_path: Path, old: str, new: str, *flags: str) -> int:
    return main(
        ["diff", *flags, write(tmp_path, "old.yaml", old), write(tmp_path, "new.yaml", new)]
    )


def test_an_added_route_names_the_traffic_it_takes_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a new table where a route takes /api/users to orders-v2
    # WHEN the tables are compared
    code = run(tmp_path, BASE, BASE + USERS_ROUTE)

    # THEN it says the traffic moves, from the route that had it
    out = capsys.readouterr().out
    assert code == 0
    assert "no traffic changes" not in out
    assert out.splitlines()[0] == (
        "users-v2 (added): /api/users moves from everything-else (legacy 100%) to orders-v2 100%"
    )


def test_a_removed_route_names_where_its_traffic_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a new table without the users route
    # WHEN the tables are compared
    run(tmp_path, BASE + USERS_ROUTE, BASE)

    # THEN its traffic goes back to the catch-all
    assert capsys.readouterr().out.splitlines()[0] == (
        "users-v2 (removed): /api/users moves from orders-v2 100% to everything-else (legacy 100%)"
    )


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        pytest.param(
            "    timeout: 10s\n",
            "    timeout: 2s\n",
            "target legacy: timeout: 10s -> 2s",
            id="duration-as-written",
        ),
        pytest.param(
            "    timeout: 10s\n",
            "    timeout: 10s\n    retry: {attempts: 2, on: [503]}\n",
            "target legacy: retry: (not set) -> {attempts: 2, on: [503]}",
            id="nested-section",
        ),
        pytest.param(
            "    split: {legacy: 90, orders-v2: 10}\n",
            '    split: {legacy: 90, orders-v2: 10}\n    headers: {x-canary: "on"}\n',
            'orders: takes other requests (headers: (not set) -> {x-canary: "on"})',
            id="matching-headers",
        ),
        pytest.param(
            "    split: {legacy: 90, orders-v2: 10}\n",
            "    split: {legacy: 90, orders-v2: 10}\n    limits: {max_body: 1MB}\n",
            "orders: limits: (not set) -> {max_body: 1MB}",
            id="route-field",
        ),
    ],
)
def test_changed_fields_are_said_in_the_words_of_routes_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, line: str
) -> None:
    # GIVEN a table changed in one field
    # WHEN the tables are compared
    run(tmp_path, BASE, BASE.replace(old, new, 1))

    # THEN the field is said as routes.yaml says it, never as a Python repr
    out = capsys.readouterr().out
    assert line in out.splitlines()
    assert "(" not in out.replace("(not set)", "").replace("(headers:", "")


@pytest.mark.parametrize(
    ("new", "code"),
    [
        pytest.param(BASE, 0, id="same"),
        pytest.param(BASE.replace("timeout: 10s", "timeout: 5s"), 0, id="no-traffic-moves"),
        pytest.param(
            BASE.replace("legacy: 90, orders-v2: 10", "legacy: 50, orders-v2: 50"), 1, id="weights"
        ),
        pytest.param(BASE + USERS_ROUTE, 1, id="added-route"),
        pytest.param(BASE.replace("path: /api/orders", "path: /api/v2/orders"), 1, id="path"),
        pytest.param(BASE.replace("legacy: 90", "legacy: 95"), 2, id="invalid"),
    ],
)
def test_exit_code_says_whether_traffic_moves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], new: str, code: int
) -> None:
    # GIVEN the base table and a changed one
    # WHEN CI compares them with --exit-code
    found = run(tmp_path, BASE, new, "--exit-code")

    # THEN 1 exactly when traffic moves (2 for an invalid file)
    capsys.readouterr()
    assert found == code
