"""`rollout: {min_parity, min_compared}` against a real gateway with a shadow: a step advances
against an equivalent candidate and rolls back against a divergent one, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.cli.main import main
from gateway.config.load import load_config
from tests.parity.loopback import OrderService, settled
from tests.parity.test_shadow_e2e import run
from tests.support.servers import serve_in_thread, write_config

T0 = 1_700_000_040.0
ROUTES = """\
targets:
  legacy: {{url: "{legacy}"}}
  orders-v2: {{url: "{candidate}"}}
routes:
  - name: orders
    path: /api/orders
    split: {{legacy: 100, orders-v2: 0}}
    shadow:
      target: orders-v2
      compare: {{noise: 100%, min_compared: 5}}
    rollout:
      target: orders-v2
      steps: [10, 100]
      interval: 1s
      min_requests: 0
      max_error_rate: 50%
      min_parity: 99.5%
      min_compared: 10
"""


@pytest.mark.parametrize(
    ("mode", "code", "says"),
    [
        ("legacy", 0, "advanced to step 2 (100%) after step 1 (10%): "),
        ("drops", 3, "rolled back at step 1 (10%): parity 0.00% over "),
    ],
    ids=["equivalent", "divergent"],
)
def test_min_parity_advances_or_rolls_back_naming_the_field(
    mode: str, code: int, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a route in a rollout gated by min_parity, its candidate shadowed
    candidate = OrderService(mode=mode)
    with serve_in_thread(OrderService()) as legacy_url, serve_in_thread(candidate) as cand_url:
        path = write_config(tmp_path, ROUTES.format(legacy=legacy_url, candidate=cand_url))
        with serve_in_thread(create_app(path, config=load_config(path))) as gateway:
            rollout = ["rollout", path, "orders", "--metrics", gateway]
            # WHEN the rollout starts, traffic flows, and the step is judged
            assert main([*rollout, "--now", str(T0)]) == 0
            waited = main([*rollout, "--now", str(T0 + 5)])
            run(gateway, count=20)
            settled(gateway, "orders", 20)
            judged = main([*rollout, "--now", str(T0 + 10)])

    # THEN it waited for pairs, then advanced or rolled back, naming parity and the field
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("orders:")]
    assert waited == 0
    assert out[1] == "orders: waiting at step 1 (10%): parity: 0 of 10 pairs compared so far"
    assert judged == code
    assert says in out[2]
    if mode == "drops":
        assert "top difference body.status (missing): 20 pairs, noise 0" in out[2]
        assert out[2].endswith("all traffic to legacy")
    else:
        assert out[2].endswith("parity 100.00% over 20 pairs")


def test_validate_refuses_min_parity_without_a_shadow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a rollout gated by parity on a route that copies nothing
    text = ROUTES.format(legacy="http://127.0.0.1:9", candidate="http://127.0.0.1:9")
    text = text.replace("    shadow:\n      target: orders-v2\n", "").replace(
        "      compare: {noise: 100%, min_compared: 5}\n", ""
    )
    path = write_config(tmp_path, text)

    # WHEN it is validated  THEN it is refused, on the min_parity line
    assert main(["validate", path]) == 1
    assert f"{path}:14: routes[0:orders].rollout.min_parity: needs a shadow" in (
        capsys.readouterr().err
    )
