"""Where the controller reads and writes the route table: a file, an S3 object, an SSM parameter.

A read returns the text and a token of the version read; a write is refused with
`ConcurrentEdit` when the stored table is no longer that version, so an edit made by someone
else in between is never overwritten: the file's bytes are compared before the atomic rename,
S3 writes carry `If-Match: ETAG`, and SSM (which has no conditional write) is re-read for its
version just before the write.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gateway.errors import CommandError
from gateway.rollouts import yaml_text


class StoreError(CommandError):
    """The route table could not be read or written; the reason says where and why."""


class ConcurrentEdit(StoreError):
    """The route table changed between the read and the write; nothing was written."""


@dataclass(frozen=True, slots=True)
class Stored:
    text: str
    version: str  # an ETag or a parameter version, as the store knows it
    raw: bytes = b""  # a file's bytes, compared before the write


class ConfigStore(Protocol):
    description: str

    def read(self) -> Stored: ...

    def write(self, text: str, read: Stored) -> None:
        """Replace the table read as READ by TEXT, or raise ConcurrentEdit."""
        ...


class FileStore:
    def __init__(self, path: str) -> None:
        self.description = path
        self._path = Path(path)

    def read(self) -> Stored:
        try:
            data = self._path.read_bytes()
            return Stored(data.decode("utf-8"), hashlib.sha256(data).hexdigest(), data)
        except OSError as exc:
            raise StoreError(f"cannot read {self.description}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise StoreError(f"{self.description} is not UTF-8 text: {exc}") from exc

    def write(self, text: str, read: Stored) -> None:
        try:
            yaml_text.write_atomically(self._path, read.raw, text.encode("utf-8"))
        except yaml_text.FileChanged as exc:
            raise ConcurrentEdit(f"{self.description}: {exc}") from exc
        except yaml_text.Refused as exc:
            raise StoreError(f"{self.description}: {exc}") from exc


class S3Store:
    def __init__(self, url: str, client: Any = None) -> None:
        self.description = url
        bucket, _, key = url.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise StoreError(f"{url!r}: write s3://bucket/key")
        self._bucket, self._key, self._client = bucket, key, client

    def _s3(self) -> Any:
        if self._client is None:
            # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
            import boto3

            self._client = boto3.session.Session().client("s3")
        return self._client

    def read(self) -> Stored:
        # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._s3().get_object(Bucket=self._bucket, Key=self._key)
            return Stored(answer["Body"].read().decode("utf-8"), str(answer["ETag"]))
        except (BotoCoreError, ClientError, UnicodeDecodeError) as exc:
            raise StoreError(f"cannot read {self.description}: {exc}") from exc

    def write(self, text: str, read: Stored) -> None:
        # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3().put_object(
                Bucket=self._bucket,
                Key=self._key,
                Body=text.encode("utf-8"),
                ContentType="application/yaml",
                IfMatch=read.version,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise ConcurrentEdit(
                    f"{self.description} changed since it was read (ETag {read.version}); "
                    "nothing written, run again"
                ) from exc
            raise StoreError(f"cannot write {self.description}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"cannot write {self.description}: {exc}") from exc


class SsmStore:
    def __init__(self, spec: str, client: Any = None) -> None:
        self.description = spec
        self._name = spec.removeprefix("ssm:")
        self._client = client

    def _ssm(self) -> Any:
        if self._client is None:
            # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
            import boto3

            self._client = boto3.session.Session().client("ssm")
        return self._client

    def read(self) -> Stored:
        # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._ssm().get_parameter(Name=self._name, WithDecryption=True)
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"cannot read {self.description}: {exc}") from exc
        parameter = answer["Parameter"]
        return Stored(str(parameter["Value"]), str(parameter["Version"]))

    def write(self, text: str, read: Stored) -> None:
        # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
        from botocore.exceptions import BotoCoreError, ClientError

        # SSM has no conditional write: the window between this check and the put is small.
        if self.read().version != read.version:
            raise ConcurrentEdit(
                f"{self.description} changed since it was read (version {read.version}); "
                "nothing written, run again"
            )
        try:
            self._ssm().put_parameter(Name=self._name, Value=text, Overwrite=True)
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"cannot write {self.description}: {exc}") from exc


def store_for(spec: str) -> ConfigStore:
    """A path, `s3://bucket/key` or `ssm:/parameter/name`, as GATEWAY_CONFIG takes them."""
    if spec.startswith("s3://"):
        return S3Store(spec)
    if spec.startswith("ssm:"):
        return SsmStore(spec)
    return FileStore(spec)
