"""The `gateway` command: validate and explain, in-process and once as the installed script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config.load import load_config
from tests.support.gateways import GatewayFactory
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
ROUTES = str(ROOT / "routes.yaml")


def line_of(route: str) -> int:
    """The line of `- name: ROUTE` in the demo table (it changes as the demo grows)."""
    lines = Path(ROUTES).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip() == f"- name: {route}")


def demo_counts() -> str:
    config = load_config(ROUTES)
    return f"{len(config.targets)} targets, {len(config.routes)} routes"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "routes.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_validate_accepts_the_root_routes_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the demo route table
    # WHEN it is validated
    code = main(["validate", ROUTES])

    # THEN it exits 0 and says what it found
    out, err = capsys.readouterr()
    assert code == 0
    assert out == f"{ROUTES}: ok ({demo_counts()})\n"
    assert err == ""


def test_validate_lists_every_problem_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a file with mistakes on lines 3, 6 and 7 (the typo also leaves no split: line 5)
    path = write(
        tmp_path,
        """\
targets:
  legacy:
    url: ftp://legacy
routes:
  - name: orders
    path: api/orders
    spilt: {legacy: 100}
""",
    )

    # WHEN it is validated
    code = main(["validate", path])

    # THEN it exits 1 and prints each problem as file:line: field: message
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert f"{path}:3: targets.legacy.url: " in err
    assert f"{path}:5: routes[0:orders]: needs exactly one of 'split' or 'target'" in err
    assert f"{path}:6: routes[0:orders].path: " in err
    assert f"{path}:7: routes[0].spilt: unknown key (did you mean 'split'?)" in err
    assert err.startswith("4 problems in config:\n")
    assert err.count(f"{path}:") == 4


def test_explain_shows_route_targets_weights_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the demo route table
    # WHEN a plain GET for an order is explained
    code = main(["explain", ROUTES, "GET", "/api/orders/7"])

    # THEN the split route wins, with its targets, weights, stickiness and the passed-over ones
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == f"GET /api/orders/7 -> route 'orders' (line {line_of('orders')})"
    assert "  why: first accepting route in priority order" in out
    assert "  target legacy: 90%\n  target orders-v2: 10%\n" in out
    assert "  sticky on header:x-user-id" in out
    assert "passed over 'orders-canary-optin' (/api/orders): header x-canary" in out
    assert "passed over 'everything-else' (/): matches too" in out


def test_explain_with_opt_in_header_picks_the_canary_route(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the demo route table
    # WHEN the same GET is explained carrying the opt-in header
    code = main(["explain", ROUTES, "GET", "/api/orders/7", "-H", "x-canary: on"])

    # THEN the opt-in route wins and sends everything to orders-v2
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == (
        f"GET /api/orders/7 -> route 'orders-canary-optin' (line {line_of('orders-canary-optin')})"
    )
    assert "  target orders-v2: 100%" in out
    assert "target legacy" not in out


def test_explain_shows_a_rewrite(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the demo route table
    # WHEN a request to the preview prefix is explained
    code = main(["explain", ROUTES, "GET", "/v2/orders/7?x=1"])

    # THEN the rewrite is shown
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == (
        f"GET /v2/orders/7?x=1 -> route 'orders-v2-preview' (line {line_of('orders-v2-preview')})"
    )
    assert "  path rewritten: /v2/orders -> /api/orders" in out


def test_explain_path_without_route_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a table without a catch-all
    path = write(
        tmp_path,
        """\
targets:
  legacy: {url: "http://legacy:8001"}
routes:
  - {name: orders, path: /api/orders, target: legacy}
""",
    )

    # WHEN a path outside it is explained
    code = main(["explain", path, "GET", "/elsewhere"])

    # THEN it says no route matches and exits non-zero
    out = capsys.readouterr().out
    assert code != 0
    assert "GET /elsewhere: no route matches" in out


def test_explain_bad_header_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a -H value without a colon
    # WHEN it is explained
    with pytest.raises(SystemExit) as caught:
        main(["explain", ROUTES, "GET", "/", "-H", "bogus"])

    # THEN argparse-style: exit 2 with a hint on stderr
    assert caught.value.code == 2
    assert "Name: value" in capsys.readouterr().err


def test_installed_console_script_validates_routes_yaml() -> None:
    # GIVEN the `gateway` script installed next to this interpreter
    script = Path(sys.executable).parent / "gateway"
    assert script.exists()

    # WHEN it validates routes.yaml from the repository root
    result = subprocess.run(
        [str(script), "validate", "routes.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # THEN it exits 0 and reports the file ok
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"routes.yaml: ok ({demo_counts()})\n"


@pytest.mark.parametrize(
    ("path", "first_line"),
    [
        pytest.param("/%61pi/orders", "GET /%61pi/orders -> route 'orders'", id="escaped-letter"),
        pytest.param("//api//orders", "GET //api//orders -> route 'orders'", id="doubled-slashes"),
        pytest.param(
            "/_gateway/x", "GET /_gateway/x: reserved for the admin API", id="reserved-prefix"
        ),
        pytest.param(
            "//_gateway/x", "GET //_gateway/x: reserved for the admin API", id="reserved-spelled"
        ),
        pytest.param(
            "/a%2Fb", "GET /a%2Fb: refused, the gateway answers 400 bad_path", id="encoded-slash"
        ),
    ],
)
def test_explain_runs_the_gateways_own_decision(
    path: str, first_line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the demo route table
    # WHEN a spelling the gateway normalizes, reserves or refuses is explained
    main(["explain", ROUTES, "GET", path])

    # THEN explain says what the gateway does with it
    assert capsys.readouterr().out.splitlines()[0].startswith(first_line)


def test_explain_refuses_a_lower_case_method_as_the_gateway_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the demo route table
    # WHEN a lower-case method is explained
    code = main(["explain", ROUTES, "get", "/api/orders"])

    # THEN it is the gateway's 400 bad_method, not a route
    assert code == 3
    assert capsys.readouterr().out.startswith(
        "get /api/orders: refused, the gateway answers 400 bad_method"
    )


def test_explain_url_asks_the_running_gateway(
    start_gateway: GatewayFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a running gateway on the demo table
    url = start_gateway(Path(ROUTES).read_text())

    # WHEN the same request is explained from the file and from the running gateway
    main(["explain", ROUTES, "GET", "//api//orders/7", "-H", "x-canary: on"])
    from_file = capsys.readouterr().out
    code = main(["explain", "--url", url, "GET", "//api//orders/7", "-H", "x-canary: on"])
    from_gateway = capsys.readouterr().out

    # THEN both say the same, word for word
    assert code == 0
    assert from_gateway == from_file
    assert "-> route 'orders-canary-optin'" in from_gateway


def test_explain_url_reports_an_unreachable_gateway(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN nothing listening on a port
    url = f"http://127.0.0.1:{free_port()}"

    # WHEN explain asks it
    code = main(["explain", "--url", url, "GET", "/"])

    # THEN it exits 1 saying it cannot ask
    assert code == 1
    assert "cannot ask the gateway" in capsys.readouterr().err
