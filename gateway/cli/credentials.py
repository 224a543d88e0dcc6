"""The credential the `gateway` verbs send to a running gateway's admin API.

Explicit flag > `GATEWAY_ADMIN_KEY` > none. A value shaped like a JWT (three base64url parts)
goes as `Authorization: Bearer ...`, for an `admin: {jwt: ...}` block; any other value is an
API key, sent in the header `GATEWAY_ADMIN_HEADER` names (default `x-api-key`, the default
header of an `api_keys` block).
"""

from __future__ import annotations

import argparse
import os
import re

ENV_KEY = "GATEWAY_ADMIN_KEY"
ENV_HEADER = "GATEWAY_ADMIN_HEADER"
DEFAULT_HEADER = "x-api-key"
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


def admin_headers(explicit: str | None = None) -> dict[str, str]:
    """The headers carrying the admin credential, or none when no credential is given."""
    credential = explicit if explicit is not None else os.environ.get(ENV_KEY)
    if not credential:
        return {}
    if _JWT.match(credential):
        return {"authorization": f"Bearer {credential}"}
    return {os.environ.get(ENV_HEADER, DEFAULT_HEADER).lower(): credential}


def add_admin_key(verb: argparse.ArgumentParser) -> None:
    """The `--admin-key` flag of a verb that reads a running gateway's admin API."""
    verb.add_argument(
        "--admin-key",
        metavar="KEY",
        default=None,
        help=f"the admin API key or JWT (default: ${ENV_KEY})",
    )
