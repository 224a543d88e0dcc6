"""A route's `shadow:` block through the loader: `gateway validate` and the running gateway
refuse the same mistakes, each with its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config.load import load_config
from gateway.parity.spec import ShadowSpec

HEAD = """\
targets:
  legacy: {url: "http://127.0.0.1:9"}
  orders-v2: {url: "http://127.0.0.1:9"}
routes:
  - name: orders
    path: /api/orders
"""

BAD = {
    "unknown-target": ("target: legacy\n    shadow:\n      target: orders-v3\n", 9, "target"),
    "same-as-primary": ("target: orders-v2\n    shadow:\n      target: orders-v2\n", 9, "target"),
    "no-target": ("target: legacy\n    shadow:\n      percent: 5\n", 8, "target"),
    "bad-writes": (
        "target: legacy\n    shadow:\n      target: orders-v2\n      writes: always\n",
        10,
        "writes",
    ),
    "bad-noise": (
        "target: legacy\n    shadow:\n      target: orders-v2\n"
        "      compare:\n        noise: lots\n",
        11,
        "compare.noise",
    ),
    "bad-ignore-path": (
        "target: legacy\n    shadow:\n      target: orders-v2\n"
        "      compare:\n        ignore: [meta]\n",
        11,
        "compare.ignore",
    ),
    "unknown-key": (
        "target: legacy\n    shadow:\n      target: orders-v2\n      mirror: yes\n",
        10,
        "mirror",
    ),
}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "routes.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("case", sorted(BAD), ids=sorted(BAD))
def test_validate_refuses_a_bad_shadow_block_with_its_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a route whose shadow block has one mistake
    route, line, field = BAD[case]
    path = write(tmp_path, HEAD + "    " + route)

    # WHEN it is validated
    code = main(["validate", path])

    # THEN it exits 1 naming the file, the line and the field
    _, err = capsys.readouterr()
    assert code == 1
    assert f"{path}:{line}: routes[0:orders].shadow.{field}" in err, err


def test_a_good_shadow_block_is_frozen_in_the_route(tmp_path: Path) -> None:
    # GIVEN a route with every key of the contract
    path = write(
        tmp_path,
        HEAD
        + """    target: legacy
    shadow:
      target: orders-v2
      percent: 25
      methods: [GET, HEAD]
      writes: idempotency-key
      max_body: 1MB
      timeout: 5s
      compare:
        headers: [content-type, location]
        ignore: [body.meta.request_id, "body.items[].updated_at"]
        noise: 5%
""",
    )

    # WHEN it is loaded
    shadow = load_config(path).routes[0].shadow

    # THEN the spec is the block's, as frozen data
    assert isinstance(shadow, ShadowSpec)
    assert (shadow.target, shadow.percent, shadow.writes) == ("orders-v2", 0.25, "idempotency-key")
    assert shadow.compare.ignore == ("body.meta.request_id", "body.items[].updated_at")
    assert shadow.compare.noise == pytest.approx(0.05)
