"""The migration ledger: appended whole by concurrent processes, on a file, S3 and SSM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3

from gateway.migration.entries import Move, entry
from gateway.migration.ledger import (
    LEDGER_NAME,
    FileLedger,
    S3Ledger,
    SsmLedger,
    ledger_for,
)

APPENDS = 200
WRITER = """
import sys
from gateway.migration.ledger import FileLedger
ledger = FileLedger(sys.argv[1])
for i in range(int(sys.argv[3])):
    ledger.append({"writer": sys.argv[2], "n": i, "pad": "x" * 5000})
"""


def test_two_processes_appending_at_once_lose_no_line(tmp_path: Path) -> None:
    # GIVEN two processes appending long lines (past PIPE_BUF) to one ledger at once
    path = tmp_path / LEDGER_NAME
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(APPENDS)])
        for name in ("a", "b")
    ]
    # WHEN both finish
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0]
    # THEN every line of each is there, whole, in its own order
    lines = FileLedger(path).entries()
    assert len(lines) == 2 * APPENDS
    for name in ("a", "b"):
        assert [line["n"] for line in lines if line["writer"] == name] == list(range(APPENDS))
    assert len(path.read_text().splitlines()) == 2 * APPENDS


def test_a_line_names_time_route_moves_who_why_evidence_and_version() -> None:
    # GIVEN a move  WHEN it becomes a ledger line  THEN every field is in it, the time in UTC
    move = Move("orders", "migrate", "alice", "parity met", {"parity": "99.8%"}, forced=True)
    line = entry(move, "shadow", "canary", "abc123")
    assert line["time"].endswith("Z") and line["time"][10] == "T"
    assert (line["route"], line["from"], line["to"], line["who"]) == (
        "orders", "shadow", "canary", "alice",
    )  # fmt: skip
    assert (line["reason"], line["evidence"], line["version"], line["forced"]) == (
        "parity met", {"parity": "99.8%"}, "abc123", True,
    )  # fmt: skip


def test_the_ledger_lives_beside_the_table(tmp_path: Path) -> None:
    # GIVEN tables named as GATEWAY_CONFIG names them  THEN the ledger is beside each
    local = ledger_for(str(tmp_path / "routes.yaml"))
    assert isinstance(local, FileLedger) and local.path == tmp_path / LEDGER_NAME
    on_s3 = ledger_for("s3://bucket/gateway/routes.yaml")
    assert isinstance(on_s3, S3Ledger) and on_s3.key == "gateway/migration-ledger.jsonl"
    on_ssm = ledger_for("ssm:/gateway/routes")
    assert isinstance(on_ssm, SsmLedger) and on_ssm.name == "/gateway/routes-ledger"


def test_s3_ledger_appends_under_if_match_and_keeps_every_line(aws: str) -> None:
    # GIVEN a bucket, and two ledgers on the same object (two writers)
    boto3.client("s3").create_bucket(Bucket="tables")
    first, second = (S3Ledger("tables", "gw/migration-ledger.jsonl") for _ in range(2))
    # WHEN they append in turn, each read-modify-write guarded by the object's ETag
    for n in range(6):
        (first if n % 2 else second).append({"n": n})
    # THEN the object holds every line, in order
    assert [line["n"] for line in first.entries()] == list(range(6))


def test_s3_ledger_retries_when_another_append_came_between(aws: str) -> None:
    # GIVEN a ledger whose first put finds the object changed under it
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="tables")
    ledger = S3Ledger("tables", "ledger.jsonl")
    ledger.append({"n": 0})
    real_put = s3.put_object
    calls: list[int] = []

    class Racing:
        def __getattr__(self, name: str) -> object:
            return getattr(s3, name)

        def put_object(self, **kwargs: object) -> object:
            if not calls:  # someone else appends between our read and our put
                real_put(Bucket="tables", Key="ledger.jsonl", Body=b'{"n": 0}\n{"n": 1}\n')
            calls.append(1)
            return real_put(**kwargs)

    racing = S3Ledger("tables", "ledger.jsonl", client=Racing())
    # WHEN it appends
    racing.append({"n": 2})
    # THEN its first put was refused (If-Match), the retry kept the other writer's line
    assert len(calls) == 2
    assert [line["n"] for line in ledger.entries()] == [0, 1, 2]


def test_ssm_ledger_is_the_parameters_history(aws: str) -> None:
    # GIVEN a ledger parameter  WHEN three moves are appended
    ledger = SsmLedger("/gateway/routes-ledger")
    for n in range(3):
        ledger.append({"n": n})
    # THEN each is a version of the parameter, read back in order
    assert [line["n"] for line in ledger.entries()] == [0, 1, 2]
    history = boto3.client("ssm").get_parameter_history(Name="/gateway/routes-ledger")
    assert len(history["Parameters"]) == 3


def test_a_torn_line_is_skipped_never_fatal(tmp_path: Path) -> None:
    # GIVEN a ledger with a torn last line (a crash mid-write on another system)
    path = tmp_path / LEDGER_NAME
    path.write_text('{"n": 0}\n{"n": 1')
    # THEN the whole lines are read, the torn one skipped
    assert FileLedger(path).entries() == [{"n": 0}]


def test_no_ledger_yet_reads_as_empty(tmp_path: Path) -> None:
    # GIVEN no ledger file  THEN it reads as no move yet
    assert FileLedger(tmp_path / LEDGER_NAME).entries() == []
