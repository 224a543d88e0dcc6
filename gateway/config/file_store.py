"""A routes.yaml on disk as a config store: read, read once settled, written by atomic rename."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import stat
import tempfile
import time
from pathlib import Path

from gateway.config.bounds import decode_capped, excerpt, max_bytes
from gateway.config.model import ConfigError, ConfigProblem
from gateway.config.stored import ConcurrentEdit, Stored, StoreError, Unreadable

FILE_POLL_SECONDS = 1.0
SETTLE_SECONDS = 0.5

Marker = tuple[int, int, int]


class FileStore:
    """A routes.yaml on disk; a changed file is loaded only once it has stopped changing.

    A file written in place (`cat > routes.yaml`, an editor, a config tool) can be read
    half-written, and a prefix of a table is often a valid, smaller table. So a changed file
    is read twice, `settle` seconds apart, and taken only when size, mtime and content agree;
    otherwise it is left for the next poll. The first read (at start) is taken at once.
    A write goes to a temp file beside it, then replaces it by rename, and only when the file
    still holds the bytes that were read.
    """

    default_ttl = FILE_POLL_SECONDS

    def __init__(self, path: str, settle: float | None = None) -> None:
        self.description = path
        self._path = Path(path)
        self._settle = settle  # None: GATEWAY_CONFIG_SETTLE, read when first needed
        self._seen: Marker | None = None

    def read(self) -> Stored:
        _, text, digest, data = self._snapshot()
        return Stored(text, digest or hashlib.sha256(data).hexdigest(), data)

    def read_if_changed(self) -> str | None:
        if self._settle is None:
            self._settle = settle_for_env()
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

    def write(self, text: str, read: Stored) -> None:
        """Replace the file read as READ by TEXT, or raise ConcurrentEdit."""
        write_atomically(self._path, read.raw, text.encode("utf-8"), self.description)

    def _marker(self) -> Marker:
        try:
            stat_result = self._path.stat()
        except OSError as exc:
            raise Unreadable(self.description, exc) from exc
        return (stat_result.st_mtime_ns, stat_result.st_size, stat_result.st_ino)

    def _snapshot(self) -> tuple[Marker, str, str, bytes]:
        """(stat marker, text, content hash, bytes), the marker taken before and checked after."""
        before = self._marker()
        try:
            with self._path.open("rb") as handle:
                data = handle.read(max_bytes() + 1)
            text = decode_capped(data)
        except (OSError, UnicodeDecodeError) as exc:
            raise Unreadable(self.description, exc) from exc
        after = self._marker()
        digest = hashlib.sha256(data).hexdigest() if before == after else ""
        return after, text, digest, data


def write_atomically(path: Path, expected: bytes, data: bytes, description: str) -> None:
    """A temp file in the same directory, fsync, rename over the original (through a symlink)."""
    real = path.resolve()
    try:
        mode = stat.S_IMODE(real.stat().st_mode)
        handle, name = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    except OSError as exc:
        raise StoreError(f"{description}: cannot write next to the file: {exc}") from exc
    temp = Path(name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        temp.chmod(mode)
        if real.read_bytes() != expected:
            raise ConcurrentEdit(
                f"{description}: the file changed while it was being edited; run the command again"
            )
        temp.replace(real)
    except OSError as exc:
        raise StoreError(f"{description}: cannot write the file: {exc}") from exc
    finally:
        temp.unlink(missing_ok=True)
    _sync_directory(real.parent)


def _sync_directory(directory: Path) -> None:
    # Makes the rename itself durable; best effort, as not every platform allows it.
    with contextlib.suppress(OSError):
        handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def settle_for_env() -> float:
    """GATEWAY_CONFIG_SETTLE seconds (default 0.5, at most 10): how long a changed file must
    stay unchanged before it is loaded; 0 loads a change at once."""
    if not os.environ.get("GATEWAY_CONFIG_SETTLE"):
        return SETTLE_SECONDS
    return min(seconds_from_env("GATEWAY_CONFIG_SETTLE"), 10.0)


def seconds_from_env(name: str) -> float:
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
