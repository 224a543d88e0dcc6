"""JSON Web Key Sets: the RS256 and ES256 signing keys a JWT is checked against, by `kid`.

Read once from a file, or fetched from a URL on first use and again when old or when a token
names an unknown key. No error message or log line quotes a key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import aiohttp
import jwt

if TYPE_CHECKING:
    from gateway.auth import JwtAuth

# A failed fetch is an auth problem: it is logged where the rest of auth logs.
log = logging.getLogger("gateway.auth")

ALGORITHMS: Final = frozenset({"RS256", "ES256"})
JWKS_TIMEOUT_SECONDS: Final = 5.0
JWKS_MAX_AGE_SECONDS: Final = 300.0
JWKS_RETRY_SECONDS: Final = 30.0
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


class JwksCache:
    """Signing keys by `kid`, from a JWKS URL (fetched on first use) or a file (read at once).

    A URL is fetched again when the keys are 5 minutes old, or on an unknown `kid` (key
    rotation), but never sooner than 30 s after the last attempt, successful or not. A failed
    fetch keeps serving the keys already held.
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        file: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (url is None) == (file is None):
            raise ValueError("JwksCache needs exactly one of url and file")
        self._url = url
        self._clock = clock
        self._skipped: tuple[str, ...] = ()
        self._keys: dict[str, jwt.PyJWK] = {}
        if file is not None:
            self._accept(*read_jwks(_read_jwks_file(Path(file)), str(file)), source=str(file))
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_auth(cls, auth: JwtAuth, base_dir: Path | None = None) -> JwksCache:
        """The cache for `auth`; a relative `jwks_file` is taken from `base_dir`."""
        if auth.jwks_file is None:
            return cls(url=auth.jwks_url)
        return cls(file=(base_dir or Path()) / auth.jwks_file)

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def key(self, kid: str) -> jwt.PyJWK | None:
        if self._due(kid):
            async with self._lock:
                if self._due(kid):  # a coroutine that held the lock may have just fetched
                    await self._refresh()
        return self._keys.get(kid)

    def _due(self, kid: str) -> bool:
        now = self._clock()
        if self._url is None or now - self._attempted_at < JWKS_RETRY_SECONDS:
            return False
        return kid not in self._keys or now - self._fetched_at >= JWKS_MAX_AGE_SECONDS

    async def _refresh(self) -> None:
        # Stamped once the attempt is over, not before: coroutines queued on the lock meanwhile
        # then see it and do not fetch again, and a cancelled attempt does not count.
        try:
            keys, skipped = read_jwks(await self._fetch(), source=str(self._url))
        except (aiohttp.ClientError, TimeoutError, JwksError) as exc:
            self._attempted_at = self._clock()
            reason = exc.__class__.__name__ if isinstance(exc, TimeoutError) else exc
            log.warning(
                "JWKS fetch from %s failed (%s); keeping %d cached keys",
                self._url,
                reason,
                len(self._keys),
            )
        else:
            self._accept(keys, skipped, source=str(self._url))
            self._fetched_at = self._attempted_at = self._clock()

    def _accept(self, keys: dict[str, jwt.PyJWK], skipped: tuple[str, ...], source: str) -> None:
        # Logged once per key set, not on every refetch of the same document.
        if skipped and skipped != self._skipped:
            log.warning("JWKS %s: skipped unusable key(s) %s", source, ", ".join(skipped))
        self._keys, self._skipped = keys, skipped

    async def _fetch(self) -> bytes:
        async with self._client().get(str(self._url), allow_redirects=False) as response:
            if response.status != 200:
                raise JwksError(f"{self._url}: HTTP {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                body += chunk
                if len(body) > JWKS_MAX_BYTES:
                    raise JwksError(f"{self._url}: larger than {JWKS_MAX_BYTES} bytes")
            return bytes(body)

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop (aiohttp binds a session to its loop).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=JWKS_TIMEOUT_SECONDS),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _read_jwks_file(path: Path) -> bytes:
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
        read_jwks(_read_jwks_file(path), str(path))
    except JwksError as exc:
        return str(exc)
    return None
