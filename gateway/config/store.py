"""Where the route table comes from: a file, an S3 object, or an SSM parameter.

GATEWAY_CONFIG names it: a path, `s3://bucket/key`, or `ssm:/parameter/name`. Each source
answers `read_if_changed()` cheaply when nothing changed (a stat, an ETag, a version), so
it can be asked often. boto3 is imported only for the remote ones.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from typing import Any, Protocol

from gateway.config.bounds import excerpt, max_bytes
from gateway.config.load import parse_config
from gateway.config.model import ConfigError, ConfigProblem, GatewayConfig

FILE_POLL_SECONDS = 1.0
REMOTE_TTL_SECONDS = 60.0
SETTLE_SECONDS = 0.5


class ConfigSource(Protocol):
    description: str
    default_ttl: float

    def read_if_changed(self) -> str | None:
        """The text when it changed since the last read (or on the first read), else None."""
        ...


class FileSource:
    """A routes.yaml on disk, read only once it has stopped changing.

    A file written in place (`cat > routes.yaml`, an editor, a config tool) can be read
    half-written, and a prefix of a table is often a valid, smaller table. So a changed file
    is read twice, `settle` seconds apart, and taken only when size, mtime and content agree;
    otherwise it is left for the next poll. The first read (at start) is taken at once.
    """

    default_ttl = FILE_POLL_SECONDS

    def __init__(self, path: str, settle: float | None = None) -> None:
        self.description = path
        self._path = Path(path)
        self._settle = settle_for_env() if settle is None else settle
        self._seen: tuple[int, int, int] | None = None

    def read_if_changed(self) -> str | None:
        marker = self._marker()
        if marker == self._seen:
            return None
        first = self._snapshot()
        if self._seen is not None and self._settle > 0:
            time.sleep(self._settle)  # in the reloader's worker thread, never on the loop
            if self._snapshot() != first:
                return None  # still being written: the next poll looks again
        self._seen = first[0]
        return first[1]

    def _marker(self) -> tuple[int, int, int]:
        try:
            stat = self._path.stat()
        except OSError as exc:
            raise _unreadable(self.description, exc) from exc
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _snapshot(self) -> tuple[tuple[int, int, int], str, str]:
        """(stat marker, text, content hash), the marker taken before and checked after."""
        before = self._marker()
        try:
            with self._path.open("rb") as handle:
                data = handle.read(max_bytes() + 1)
            # Past the cap the text is refused for its size, not for a character cut in two.
            text = data.decode("utf-8", "strict" if len(data) <= max_bytes() else "replace")
        except (OSError, UnicodeDecodeError) as exc:
            raise _unreadable(self.description, exc) from exc
        after = self._marker()
        digest = hashlib.sha256(data).hexdigest() if before == after else ""
        return after, text, digest


class S3Source:
    default_ttl = REMOTE_TTL_SECONDS

    def __init__(self, url: str, client: Any = None) -> None:
        self.description = url
        bucket, _, key = url.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise ConfigError([ConfigProblem(url, 0, "GATEWAY_CONFIG", "write s3://bucket/key")])
        self._bucket, self._key = bucket, key
        self._client = client
        self._etag: str | None = None

    def read_if_changed(self) -> str | None:
        # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
        from botocore.exceptions import BotoCoreError, ClientError

        if self._client is None:
            # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
            import boto3

            self._client = boto3.session.Session().client("s3")
        try:
            head = self._client.head_object(Bucket=self._bucket, Key=self._key)
            if head.get("ETag") == self._etag:
                return None
            answer = self._client.get_object(Bucket=self._bucket, Key=self._key)
            data = answer["Body"].read(max_bytes() + 1)
            text = data.decode("utf-8", "strict" if len(data) <= max_bytes() else "replace")
        except (BotoCoreError, ClientError, UnicodeDecodeError) as exc:
            raise _unreadable(self.description, exc) from exc
        self._etag = answer.get("ETag")
        return str(text)


class SsmSource:
    default_ttl = REMOTE_TTL_SECONDS

    def __init__(self, spec: str, client: Any = None) -> None:
        self.description = spec
        self._name = spec.removeprefix("ssm:")
        self._client = client
        self._version: int | None = None

    def read_if_changed(self) -> str | None:
        # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
        from botocore.exceptions import BotoCoreError, ClientError

        if self._client is None:
            # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
            import boto3

            self._client = boto3.session.Session().client("ssm")
        try:
            answer = self._client.get_parameter(Name=self._name, WithDecryption=True)
        except (BotoCoreError, ClientError) as exc:
            raise _unreadable(self.description, exc) from exc
        parameter = answer["Parameter"]
        if parameter.get("Version") == self._version:
            return None
        self._version = parameter.get("Version")
        return str(parameter["Value"])


def _unreadable(description: str, exc: BaseException) -> ConfigError:
    reason = excerpt(str(exc))
    return ConfigError([ConfigProblem(description, 0, "source", f"cannot read: {reason}")])


def source_for(spec: str) -> ConfigSource:
    if spec.startswith("s3://"):
        return S3Source(spec)
    if spec.startswith("ssm:"):
        return SsmSource(spec)
    return FileSource(spec)


def ttl_for(source: ConfigSource) -> float:
    """GATEWAY_CONFIG_TTL seconds, else the source's own default (1 s files, 60 s remote)."""
    if not os.environ.get("GATEWAY_CONFIG_TTL"):
        return source.default_ttl
    return max(_seconds_from_env("GATEWAY_CONFIG_TTL"), 0.1)


def settle_for_env() -> float:
    """GATEWAY_CONFIG_SETTLE seconds (default 0.5, at most 10): how long a changed file must
    stay unchanged before it is loaded; 0 loads a change at once."""
    if not os.environ.get("GATEWAY_CONFIG_SETTLE"):
        return SETTLE_SECONDS
    return min(_seconds_from_env("GATEWAY_CONFIG_SETTLE"), 10.0)


def _seconds_from_env(name: str) -> float:
    """A finite, non-negative number of seconds from `name`, or a ConfigError naming it."""
    value = os.environ.get(name, "")
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        problem = f"{excerpt(value)!r} is not a number of seconds"
        raise ConfigError([ConfigProblem(name, 0, "environment", problem)])
    return seconds


def load_from(source: ConfigSource) -> GatewayConfig:
    """The first read: the whole config or a ConfigError; nothing is served half-valid."""
    text = source.read_if_changed()
    if text is None:
        raise ConfigError([ConfigProblem(source.description, 0, "source", "nothing to read")])
    return parse_config(text, source.description)
