"""Each stage's shape, as `gateway validate` checks it; the stage derived when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config.load import parse_config
from gateway.config.stages import legacy_of, stage_of

HEAD = """\
targets:
  monolith: {url: "http://127.0.0.1:9"}
  orders-v2: {url: "http://127.0.0.1:9"}
legacy: monolith
routes:
  - name: orders
    path: /api/orders
"""

GOOD = {
    "legacy": "stage: legacy\n    target: monolith\n",
    "shadow": "stage: shadow\n    target: monolith\n    shadow: {target: orders-v2}\n",
    "canary": "stage: canary\n    split: {monolith: 90, orders-v2: 10}\n",
    "new": "stage: new\n    split: {monolith: 0, orders-v2: 100}\n    fallback: monolith\n",
    "retired": "stage: retired\n    target: orders-v2\n",
}
BAD = {
    "legacy-with-canary": "stage: legacy\n    split: {monolith: 90, orders-v2: 10}\n",
    "shadow-without-block": "stage: shadow\n    target: monolith\n",
    "canary-at-100": "stage: canary\n    split: {monolith: 0, orders-v2: 100}\n",
    "new-with-legacy-share": "stage: new\n    split: {monolith: 50, orders-v2: 50}\n",
    "retired-with-fallback": "stage: retired\n    target: orders-v2\n    fallback: monolith\n",
    "unknown-stage": "stage: done\n    target: orders-v2\n",
}


def table(tmp_path: Path, route: str) -> str:
    path = tmp_path / "routes.yaml"
    path.write_text(HEAD + "    " + route)
    return str(path)


@pytest.mark.parametrize("stage", list(GOOD), ids=list(GOOD))
def test_validate_accepts_each_stage_in_its_shape(
    tmp_path: Path, stage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a route in the shape of its declared stage  WHEN validated  THEN it passes
    assert main(["validate", table(tmp_path, GOOD[stage])]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_validate_refuses_a_route_out_of_its_stages_shape_with_file_and_line(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a route whose shape disagrees with its stage  WHEN validated
    path = table(tmp_path, BAD[case])
    code = main(["validate", path])
    # THEN it is refused, naming the file, the line and the stage's field
    err = capsys.readouterr().err
    assert code == 1
    # (the route's line for a shape, the key's for an unknown stage)
    assert f"{path}:6: routes[" in err or f"{path}:8: routes[" in err
    assert "orders].stage:" in err


@pytest.mark.parametrize(
    ("route", "stage"),
    [
        ("target: monolith\n", "legacy"),
        ("target: monolith\n    shadow: {target: orders-v2}\n", "shadow"),
        ("split: {monolith: 99, orders-v2: 1}\n", "canary"),
        ("split: {monolith: 0, orders-v2: 100}\n", "new"),
        ("target: orders-v2\n    fallback: monolith\n", "new"),
        ("target: orders-v2\n", "retired"),
    ],
    ids=["legacy", "shadow", "canary", "new-listed", "new-fallback", "retired"],
)
def test_an_absent_stage_is_derived_from_the_route(route: str, stage: str) -> None:
    # GIVEN a route without stage:  WHEN its stage is asked  THEN its shape says it
    config = parse_config(HEAD + "    " + route, "<test>")
    found = config.routes[0]
    assert stage_of(found, legacy_of(found, config.legacy, config.targets)) == stage


def test_the_legacy_is_the_baseline_then_the_top_level_name_then_the_first_target() -> None:
    # GIVEN routes naming their legacy three ways  THEN each is found in that order
    text = HEAD.replace("legacy: monolith\n", "") + (
        "    split: {orders-v2: 50, monolith: 50}\n    baseline: monolith\n"
        "  - name: other\n    path: /other\n    split: {orders-v2: 50, monolith: 50}\n"
    )
    config = parse_config(text, "<test>")
    with_baseline, first = config.routes
    assert legacy_of(with_baseline, None, config.targets) == "monolith"
    assert legacy_of(first, None, config.targets) == "orders-v2"
    assert legacy_of(first, "monolith", config.targets) == "monolith"
