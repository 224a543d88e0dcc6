"""One ledger line: when, which route, from and to, who, why, on what evidence, which table."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Move:
    """What a command moved: route NAME by KIND, with the why and the evidence."""

    route: str
    kind: str  # migrate, shift, promote, rollback, rollout-step, rollout-rollback
    by: str | None = None
    reason: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    forced: bool = False


def entry(move: Move, moved_from: str, moved_to: str, version: str) -> dict[str, Any]:
    """A ledger line: UTC time, route, from, to, kind, who, reason, evidence, version."""
    line: dict[str, Any] = {
        "time": utc_now(),
        "route": move.route,
        "from": moved_from,
        "to": moved_to,
        "kind": move.kind,
        "who": who(move.by),
        "reason": move.reason,
        "evidence": dict(move.evidence),
        "version": version,
    }
    if move.forced:
        line["forced"] = True
    return line


def who(by: str | None = None) -> str:
    """`--by`, else on Lambda the IAM identity (or the function's name), else git's user.name,
    else $USER."""
    if by:
        return by
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    if function:
        return _caller_identity() or function
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, timeout=5, check=False
        )
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def _caller_identity() -> str | None:
    try:
        # cold start: boto3 only where AWS is used (s3:, ssm:, Lambda)
        import boto3

        arn = boto3.client("sts").get_caller_identity().get("Arn")
    except Exception:  # any failure: the function's name will do
        return None
    return str(arn) if arn else None
