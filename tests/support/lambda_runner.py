"""`gateway.lambda_handler:handler` in a fresh interpreter, as Lambda runs it.

The child imports the handler once (a cold start, with `GATEWAY_CONFIG` and whatever else
is in `env`), then answers each event written to its stdin as one JSON line with one JSON
line on stdout: `{"ok": answer}`, or `{"raised": "Type: message"}` when the handler raised
(which on AWS is an invocation error, and the ALB's own 502). Warm invocations reuse the
same process, as Lambda does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

_CHILD = r"""
import json, sys, traceback
sys.stdout = sys.stderr  # the handler's own prints and log lines must not mix with answers
out = sys.__stdout__
from gateway.lambda_handler import handler
class Context:
    function_name = "gateway"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:gateway"
    memory_limit_in_mb = 1024
    def get_remaining_time_in_millis(self):
        return 30000
for line in sys.stdin:
    event = json.loads(line)
    try:
        answer = {"ok": handler(event, Context())}
    except BaseException as exc:
        answer = {"raised": f"{type(exc).__name__}: {exc}"[:2000]}
    out.write(json.dumps(answer) + "\n")
    out.flush()
"""


class LambdaProcess:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        """The handler's answer; fails the test if the handler raised."""
        found = self.call(event)
        if "raised" in found:
            raise AssertionError(f"the handler raised (a Lambda invocation error): {found}")
        answer: dict[str, Any] = found["ok"]
        return answer

    def call(self, event: dict[str, Any]) -> dict[str, Any]:
        """`{"ok": answer}` or `{"raised": "..."}`."""
        stdin, stdout = self.process.stdin, self.process.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("the Lambda child has no pipes")
        stdin.write(json.dumps(event) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the Lambda child died (exit {self.process.poll()})")
        found: dict[str, Any] = json.loads(line)
        return found


@contextmanager
def lambda_process(
    config: str, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[LambdaProcess]:
    """A fresh interpreter serving `handler` on the table at `config` until the block ends;
    what it logs (its stdout, where Lambda's log and EMF read) goes to `log` if given."""
    child_env = {**os.environ, "GATEWAY_CONFIG": config, "GATEWAY_ACCESS_LOG": "off"}
    child_env.update(env or {})
    with (
        (log or Path(os.devnull)).open("w") as logged,
        subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            cwd=ROOT,
            env=child_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=logged,
            text=True,
        ) as process,
    ):
        try:
            yield LambdaProcess(process)
        finally:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
