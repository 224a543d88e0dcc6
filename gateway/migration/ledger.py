"""The migration ledger: one JSON line per move of a route, appended, never rewritten.

It is kept beside the route table, wherever the table is stored:
- a file: `migration-ledger.jsonl` in the table's folder; each line is one `write(2)` on a
  descriptor opened `O_APPEND`, under an exclusive `flock`, then `fsync`: two processes
  appending at once interleave whole lines and lose none;
- `s3://bucket/dir/routes.yaml`: the object `s3://bucket/dir/migration-ledger.jsonl`, appended
  by read-modify-write whose put carries `If-Match: ETAG` (or `If-None-Match: *` for the first
  line), retried when someone else appended in between;
- `ssm:/name`: the parameter `/name-ledger`, one version per line (SSM's parameter history is
  the ledger; each put is its own version, so concurrent appends lose nothing; SSM keeps the
  latest 100 versions of a parameter).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from gateway.errors import CommandError

LEDGER_NAME = "migration-ledger.jsonl"
S3_ATTEMPTS = 10


class LedgerError(CommandError):
    """The ledger could not be read or appended to; the reason says where and why."""


class Ledger(Protocol):
    description: str

    def append(self, entry: Mapping[str, Any]) -> None: ...

    def entries(self) -> list[dict[str, Any]]: ...


def line_of(entry: Mapping[str, Any]) -> bytes:
    return (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


def parse_lines(text: str) -> list[dict[str, Any]]:
    """The entries of a ledger's text; a torn or foreign line is skipped, never fatal."""
    found: list[dict[str, Any]] = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            item = json.loads(line)
            if isinstance(item, dict):
                found.append(item)
    return found


class FileLedger:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.description = str(self.path)

    def append(self, entry: Mapping[str, Any]) -> None:
        data = line_of(entry)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LedgerError(f"cannot open {self.description}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            written = os.write(fd, data)
            if written != len(data):
                raise LedgerError(f"{self.description}: short write ({written}/{len(data)})")
            os.fsync(fd)
        except OSError as exc:
            raise LedgerError(f"cannot append to {self.description}: {exc}") from exc
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        try:
            return parse_lines(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise LedgerError(f"cannot read {self.description}: {exc}") from exc


class S3Ledger:
    def __init__(self, bucket: str, key: str, client: Any = None) -> None:
        self.bucket, self.key = bucket, key
        self.description = f"s3://{bucket}/{key}"
        self._client = client

    def _s3(self) -> Any:
        if self._client is None:
            # cold start: boto3 only where AWS is used (s3:, ssm:, Lambda)
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def _read(self) -> tuple[bytes, str | None]:
        # cold start: boto3 only where AWS is used (s3:, ssm:, Lambda)
        from botocore.exceptions import ClientError

        try:
            answer = self._s3().get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            # Without s3:ListBucket a missing object reads as AccessDenied; the put after it is
            # conditional (If-None-Match: *), so an object that does exist is never replaced.
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "AccessDenied"):
                return b"", None
            raise LedgerError(f"cannot read {self.description}: {exc}") from exc
        return answer["Body"].read(), str(answer["ETag"])

    def append(self, entry: Mapping[str, Any]) -> None:
        # cold start: boto3 only where AWS is used (s3:, ssm:, Lambda)
        from botocore.exceptions import ClientError

        for attempt in range(S3_ATTEMPTS):
            body, etag = self._read()
            condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
            try:
                self._s3().put_object(
                    Bucket=self.bucket, Key=self.key, Body=body + line_of(entry), **condition
                )
                return
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    raise LedgerError(f"cannot append to {self.description}: {exc}") from exc
            time.sleep(0.01 * (attempt + 1))  # someone else appended: read again, bounded
        raise LedgerError(f"{self.description}: still contended after {S3_ATTEMPTS} attempts")

    def entries(self) -> list[dict[str, Any]]:
        return parse_lines(self._read()[0].decode("utf-8", "replace"))


class SsmLedger:
    def __init__(self, name: str, client: Any = None) -> None:
        self.name = name
        self.description = f"ssm:{name}"
        self._client = client

    def _ssm(self) -> Any:
        if self._client is None:
            # cold start: boto3 only where AWS is used (s3:, ssm:, Lambda)
            import boto3

            self._client = boto3.client("ssm")
        return self._client

    def append(self, entry: Mapping[str, Any]) -> None:
        # cold start: boto3 only where AWS is used (s3:, ssm:, Lambda)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._ssm().put_parameter(
                Name=self.name, Value=line_of(entry).decode().strip(), Type="String", Overwrite=True
            )
        except (BotoCoreError, ClientError) as exc:
            raise LedgerError(f"cannot append to {self.description}: {exc}") from exc

    def entries(self) -> list[dict[str, Any]]:
        # cold start: boto3 only where AWS is used (s3:, ssm:, Lambda)
        from botocore.exceptions import ClientError

        lines: list[tuple[int, str]] = []
        try:
            for page in self._pages():
                lines.extend((int(p["Version"]), str(p["Value"])) for p in page["Parameters"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
                return []
            raise LedgerError(f"cannot read {self.description}: {exc}") from exc
        return parse_lines("\n".join(value for _, value in sorted(lines)))

    def _pages(self) -> Iterator[dict[str, Any]]:
        paginator = self._ssm().get_paginator("get_parameter_history")
        yield from paginator.paginate(Name=self.name)


def ledger_for(spec: str) -> Ledger:
    """The ledger beside the table named as GATEWAY_CONFIG names it: a path, s3://, ssm:."""
    if spec.startswith("s3://"):
        bucket, _, key = spec[len("s3://") :].partition("/")
        return S3Ledger(bucket, str(PurePosixPath(key).with_name(LEDGER_NAME)))
    if spec.startswith("ssm:"):
        return SsmLedger(spec[len("ssm:") :] + "-ledger")
    return FileLedger(Path(spec).resolve().parent / LEDGER_NAME)
