"""What a config store hands back, and the one exception family of every store.

A read is `Stored`: the text, a token of the version read (a content hash, an ETag, a
parameter version) and, for a file, its bytes. Every store error is a `CommandError`, so the
edit verbs and the rollout controller catch one type; `Unreadable` is also a `ConfigError`, so
the reloader, which refuses a table it cannot read as it refuses an invalid one, catches it as
it always did.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.bounds import excerpt
from gateway.config.model import ConfigError, ConfigProblem
from gateway.errors import CommandError


@dataclass(frozen=True, slots=True)
class Stored:
    text: str
    version: str  # a content hash, an ETag or a parameter version, as the store knows it
    raw: bytes = b""  # a file's bytes, compared again just before the write


class StoreError(CommandError):
    """The route table could not be read or written; the reason says where and why."""


class ConcurrentEdit(StoreError):
    """The route table changed between the read and the write; nothing was written."""


class Unreadable(StoreError, ConfigError):
    """The route table could not be read: a store error and a config error at once."""

    def __init__(self, description: str, exc: BaseException | str) -> None:
        reason = excerpt(exc if isinstance(exc, str) else str(exc))
        ConfigError.__init__(
            self, [ConfigProblem(description, 0, "source", f"cannot read: {reason}")]
        )
