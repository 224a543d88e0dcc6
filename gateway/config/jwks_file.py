"""A JWKS document read and checked: its RS256 and ES256 signing keys, by `kid`.

The loader checks a `jwks_file` with the same code the gateway reads it with at start.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Final

import jwt

# A skipped key is an auth problem: it is logged where the rest of auth logs.
log = logging.getLogger("gateway.auth")

ALGORITHMS: Final = frozenset({"RS256", "ES256"})
JWKS_MAX_BYTES: Final = 1 << 20


class JwksError(Exception):
    """A JWKS document that cannot be read or holds no usable signing key."""


def parse_jwks(data: bytes, source: str) -> dict[str, jwt.PyJWK]:
    """The RS256 and ES256 signing keys of a JWKS document, by `kid`; others are skipped."""
    keys, skipped = read_jwks(data, source)
    if skipped:
        log.warning("JWKS %s: skipped unusable key(s) %s", source, ", ".join(skipped))
    return keys


def read_jwks(data: bytes, source: str) -> tuple[dict[str, jwt.PyJWK], tuple[str, ...]]:
    """(the usable signing keys by `kid`, a description of each entry skipped).

    One odd entry (`alg: none`, `kty: oct`, a missing modulus) is skipped, never fatal: a
    provider that publishes one beside its real keys must not take every JWT route down.
    """
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise JwksError(f"{source}: not a JSON document") from exc
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksError(f"{source}: no 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    skipped: list[str] = []
    for index, entry in enumerate(entries):
        key = _signing_key(entry)
        if key is None:
            skipped.append(_describe(index, entry))
        elif isinstance(entry, dict):
            keys.setdefault(entry["kid"], key)
    if not keys:
        raise JwksError(f"{source}: no usable RS256 or ES256 signing key")
    return keys, tuple(skipped)


def _describe(index: int, entry: object) -> str:
    """Which entry was skipped, by kid, kty and alg only (short; never key material)."""
    if not isinstance(entry, dict):
        return f"#{index} (not an object)"
    parts = (f"{name}={str(entry.get(name))[:40]!r}" for name in ("kid", "kty", "alg"))
    return f"#{index} ({' '.join(parts)})"


def _signing_key(entry: object) -> jwt.PyJWK | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
        return None
    if entry.get("use", "sig") != "sig" or entry.get("crv", "P-256") != "P-256":
        return None
    try:
        key = jwt.PyJWK(entry)
    except Exception:  # PyJWT raises KeyError, TypeError, NotImplementedError on odd entries
        return None
    return key if key.algorithm_name in ALGORITHMS else None


def read_jwks_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(JWKS_MAX_BYTES + 1)
    except OSError as exc:
        raise JwksError(f"{path}: {exc.strerror}") from exc
    if len(data) > JWKS_MAX_BYTES:
        raise JwksError(f"{path}: larger than {JWKS_MAX_BYTES} bytes")
    return data


def check_jwks_file(path: Path) -> str | None:
    """Why the gateway could not start on this JWKS file, or None: for the config loader."""
    try:
        read_jwks(read_jwks_file(path), str(path))
    except JwksError as exc:
        return str(exc)
    return None
