"""Where the route table lives: a file, an S3 object, or an SSM parameter; one store each.

GATEWAY_CONFIG names it: a path, `s3://bucket/key`, or `ssm:/parameter/name`. Every store
answers the running gateway's `read_if_changed()` cheaply when nothing changed (a stat, an
ETag, a version), so it can be asked often, and the commands' `read()` and `write(text, read)`:
a write is refused with `ConcurrentEdit` when the stored table is no longer the version read,
so an edit made by someone else in between is never overwritten. A file's bytes are compared
just before the atomic rename and S3 writes carry `If-Match: ETAG`. SSM has no conditional
write: its version is read again just before an overwriting put, which leaves a known race of
one round trip in which another writer's put is lost. boto3 is imported only for S3 and SSM.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from gateway.config.bounds import decode_capped, max_bytes
from gateway.config.file_store import FileStore, seconds_from_env
from gateway.config.load import parse_config
from gateway.config.model import ConfigError, ConfigProblem, GatewayConfig
from gateway.config.stored import ConcurrentEdit, Stored, StoreError, Unreadable

REMOTE_TTL_SECONDS = 60.0


class ConfigStore(Protocol):
    description: str
    default_ttl: float

    def read(self) -> Stored:
        """The table as it is now, with its version; `Unreadable` when it cannot be read."""
        ...

    def read_if_changed(self) -> str | None:
        """The text when it changed since the last read (or on the first read), else None."""
        ...

    def write(self, text: str, read: Stored) -> None:
        """Replace the table read as READ by TEXT, or raise ConcurrentEdit."""
        ...


def _boto3_client(service: str) -> Any:
    # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
    import boto3

    return boto3.session.Session().client(service)


class S3Store:
    default_ttl = REMOTE_TTL_SECONDS

    def __init__(self, url: str, client: Any = None) -> None:
        self.description = url
        bucket, _, key = url.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise Unreadable(url, f"{url!r}: write s3://bucket/key")
        self._bucket, self._key = bucket, key
        self._client = client
        self._etag: str | None = None

    def _s3(self) -> Any:
        if self._client is None:
            self._client = _boto3_client("s3")
        return self._client

    def read(self) -> Stored:
        # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._s3().get_object(Bucket=self._bucket, Key=self._key)
            text = decode_capped(answer["Body"].read(max_bytes() + 1))
        except (BotoCoreError, ClientError, UnicodeDecodeError) as exc:
            raise Unreadable(self.description, exc) from exc
        return Stored(text, str(answer.get("ETag")))

    def read_if_changed(self) -> str | None:
        # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self._s3().head_object(Bucket=self._bucket, Key=self._key)
        except (BotoCoreError, ClientError) as exc:
            raise Unreadable(self.description, exc) from exc
        if head.get("ETag") == self._etag:
            return None
        stored = self.read()
        self._etag = stored.version
        return stored.text

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
    default_ttl = REMOTE_TTL_SECONDS

    def __init__(self, spec: str, client: Any = None) -> None:
        self.description = spec
        self._name = spec.removeprefix("ssm:")
        self._client = client
        self._version: str | None = None

    def _ssm(self) -> Any:
        if self._client is None:
            self._client = _boto3_client("ssm")
        return self._client

    def read(self) -> Stored:
        # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._ssm().get_parameter(Name=self._name, WithDecryption=True)
        except (BotoCoreError, ClientError) as exc:
            raise Unreadable(self.description, exc) from exc
        parameter = answer["Parameter"]
        return Stored(str(parameter["Value"]), str(parameter.get("Version")))

    def read_if_changed(self) -> str | None:
        stored = self.read()
        if stored.version == self._version:
            return None
        self._version = stored.version
        return stored.text

    def write(self, text: str, read: Stored) -> None:
        # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
        from botocore.exceptions import BotoCoreError, ClientError

        # The known race: SSM has no conditional put, so between this check and the put
        # (one round trip) another writer's put can be overwritten. Kept small, not closed.
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


def ttl_for(store: ConfigStore) -> float:
    """GATEWAY_CONFIG_TTL seconds, else the store's own default (1 s files, 60 s remote)."""
    if not os.environ.get("GATEWAY_CONFIG_TTL"):
        return store.default_ttl
    return max(seconds_from_env("GATEWAY_CONFIG_TTL"), 0.1)


def load_from(store: ConfigStore) -> GatewayConfig:
    """The first read: the whole config or a ConfigError; nothing is served half-valid."""
    text = store.read_if_changed()
    if text is None:
        raise ConfigError([ConfigProblem(store.description, 0, "source", "nothing to read")])
    return parse_config(text, store.description)
