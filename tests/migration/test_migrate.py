"""`gateway migrate`: a route moved between stages, each guard refusing with its numbers and
allowing when met, against a parity stub and a real gateway on loopback; the ledger line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.asgi import Receive, Scope, Send
from gateway.cli.main import main
from gateway.config.load import load_config
from gateway.migration.ledger import LEDGER_NAME, FileLedger
from tests.support.servers import serve_in_thread, write_config

TABLE = """\
legacy: legacy
targets:
  legacy: {{url: "{legacy}"}}
  orders-v2: {{url: "{candidate}"}}

routes:
  # orders move off the monolith
  - name: orders
    path: /api/orders
    split: {{legacy: 100, orders-v2: 0}}   # the monolith's orders
    rollout: {{target: orders-v2, steps: [10, 100], interval: 1s, min_requests: 20,
               max_error_rate: 5%}}
  - name: everything-else
    path: /
    target: legacy
"""


class ParityStub:
    """`GET /_gateway/parity?route=NAME` answering the report shape of `parity_report`."""

    def __init__(self) -> None:
        self.score: float | None = 97.5
        self.compared = 400
        self.asked: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.asked.append(f"{scope['path']}?{scope['query_string'].decode()}")
        body = json.dumps({"routes": [self.entry()]}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    def entry(self) -> dict[str, Any]:
        paths = [] if self.score == 100.0 else [{"path": "body.total", "verdict": "real"}]
        return {
            "route": "orders", "window": "15m", "score": self.score, "reason": None,
            "counts": {"compared": self.compared}, "paths": paths,
        }  # fmt: skip


@pytest.fixture
def parity() -> Iterator[tuple[ParityStub, str]]:
    stub = ParityStub()
    with serve_in_thread(stub) as url:
        yield stub, url


@pytest.fixture
def table(tmp_path: Path, legacy_url: str, orders_v2_url: str) -> Path:
    return Path(write_config(tmp_path, TABLE.format(legacy=legacy_url, candidate=orders_v2_url)))


def migrate(path: Path, *words: str) -> int:
    return main(["migrate", str(path), "orders", *words, "--by", "tester"])


def stage(path: Path) -> str | None:
    return next(r for r in load_config(str(path)).routes if r.name == "orders").migration.stage


def test_legacy_to_shadow_keeps_comments_and_writes_a_ledger_line(table: Path) -> None:
    # GIVEN a route on the legacy  WHEN moved to shadow (always allowed)
    assert migrate(table, "--to", "shadow") == 0
    # THEN the route is in the shadow's shape, its comments kept, and the move is recorded
    text = table.read_text()
    assert "stage: shadow" in text and "shadow: {target: orders-v2}" in text
    assert "# orders move off the monolith" in text and "# the monolith's orders" in text
    assert dict(load_config(str(table)).routes[0].split) == {"legacy": 100.0, "orders-v2": 0.0}
    (line,) = FileLedger(table.parent / LEDGER_NAME).entries()
    assert (line["route"], line["from"], line["to"], line["who"]) == (
        "orders", "legacy", "shadow", "tester",
    )  # fmt: skip


def test_shadow_to_canary_is_refused_below_min_parity_then_allowed_once_fixed(
    table: Path, parity: tuple[ParityStub, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a route in shadow whose candidate differs (parity 97.5% over 400 pairs)
    stub, url = parity
    assert migrate(table, "--to", "shadow") == 0
    # WHEN moved to canary
    code = migrate(table, "--to", "canary", "--metrics", url)
    # THEN exit 3, naming the guard, the numbers and the differing field; nothing written
    out = capsys.readouterr().out
    assert code == 3
    assert "shadow->canary parity: refused" in out
    assert "parity 97.5%" in out and "min_parity 99.5%" in out and "compared 400" in out
    assert "body.total" in out
    assert stage(table) == "shadow"
    assert stub.asked == ["/_gateway/parity?route=orders"]
    # WHEN the candidate is fixed (parity 100%)  THEN the move is allowed and recorded
    stub.score = 100.0
    assert migrate(table, "--to", "canary", "--metrics", url) == 0
    assert stage(table) == "canary"
    assert dict(load_config(str(table)).routes[0].split) == {"legacy": 95.0, "orders-v2": 5.0}
    last = FileLedger(table.parent / LEDGER_NAME).entries()[-1]
    assert last["evidence"]["shadow->canary parity"]["parity"] == "100%"


def test_too_few_compared_pairs_refuse_and_say_how_many_are_missing(
    table: Path, parity: tuple[ParityStub, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN perfect parity over only 10 pairs (min_compared defaults to 50)
    stub, url = parity
    stub.score, stub.compared = 100.0, 10
    assert migrate(table, "--to", "shadow") == 0
    # WHEN moved to canary  THEN refused, saying 40 more pairs are needed
    assert migrate(table, "--to", "canary", "--metrics", url) == 3
    assert "40 more pairs compared" in capsys.readouterr().out


def test_force_moves_past_a_guard_and_the_ledger_says_so(
    table: Path, parity: tuple[ParityStub, str]
) -> None:
    # GIVEN a refusing parity guard  WHEN forced
    _, url = parity
    assert migrate(table, "--to", "shadow") == 0
    assert migrate(table, "--to", "canary", "--metrics", url, "--force") == 0
    # THEN the route moved, and its ledger line is marked forced with the refusal
    line = FileLedger(table.parent / LEDGER_NAME).entries()[-1]
    assert line["forced"] is True and "parity 97.5%" in line["evidence"]["forced_past"][0]


def test_a_move_back_needs_a_reason_and_is_then_always_allowed(
    table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a route in shadow
    assert migrate(table, "--to", "shadow") == 0
    # WHEN moved back without a reason  THEN exit 1; with one, moved and recorded
    assert migrate(table, "--to", "legacy") == 1
    assert "--reason" in capsys.readouterr().err
    assert migrate(table, "--to", "legacy", "--reason", "orders-v2 loses totals") == 0
    assert stage(table) == "legacy"
    last = FileLedger(table.parent / LEDGER_NAME).entries()[-1]
    assert last["reason"] == "orders-v2 loses totals"


def test_canary_to_new_judges_the_candidate_on_a_real_gateway(
    table: Path, orders_v2_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a canary at 100% traffic served by a real gateway, with too few requests yet
    assert main(["migrate", str(table), "orders", "--to", "canary", "--force"]) == 0
    assert main(["shift", str(table), "orders", "orders-v2=99"]) == 0
    with serve_in_thread(create_app(str(table))) as url:
        assert migrate(table, "--to", "new", "--metrics", url) == 3
        assert "20 more requests to the candidate" in capsys.readouterr().out
        # WHEN the candidate answers enough requests, healthily
        with httpx.Client(base_url=url) as client:
            for _ in range(40):
                client.get("/api/orders")
        # THEN the move to new is allowed; the legacy stays as the fallback
        assert migrate(table, "--to", "new", "--metrics", url) == 0
    route = load_config(str(table)).routes[0]
    assert route.migration.stage == "new" and route.fallback == "legacy"


def test_new_to_retired_is_refused_while_the_legacy_is_the_fallback(
    table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a route at new, the legacy its fallback
    assert migrate(table, "--to", "new", "--force") == 0
    # WHEN moved to retired  THEN refused, saying the fallback must go first
    assert migrate(table, "--to", "retired") == 3
    assert "remove `fallback: legacy` first" in capsys.readouterr().out


def test_shift_promote_and_rollback_each_write_a_ledger_line(table: Path) -> None:
    # GIVEN a route on the legacy  WHEN shifted, promoted, rolled back
    assert main(["shift", str(table), "orders", "orders-v2=10", "--by", "ops"]) == 0
    assert main(["promote", str(table), "orders", "orders-v2"]) == 0
    assert main(["rollback", str(table), "orders"]) == 0
    # THEN three lines, each with its kind, its stages and the split it made
    lines = FileLedger(table.parent / LEDGER_NAME).entries()
    assert [(e["kind"], e["from"], e["to"]) for e in lines] == [
        ("shift", "legacy", "canary"), ("promote", "canary", "new"), ("rollback", "new", "legacy"),
    ]  # fmt: skip
    assert lines[0]["split"] == {"legacy": 90.0, "orders-v2": 10.0} and lines[0]["who"] == "ops"
