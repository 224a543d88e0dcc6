"""JSON Web Key Sets: the RS256 and ES256 signing keys a JWT is checked against, by `kid`.

Read once from a file, or fetched from a URL on first use and again when old or when a token
names an unknown key. No error message or log line quotes a key.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol

import aiohttp
import jwt

from gateway.config.jwks_file import JWKS_MAX_BYTES, JwksError, log, read_jwks, read_jwks_file

JWKS_TIMEOUT_SECONDS: Final = 5.0
JWKS_MAX_AGE_SECONDS: Final = 300.0
JWKS_RETRY_SECONDS: Final = 30.0


class KeySource(Protocol):
    """Where a JWT route's keys come from: exactly one of a URL and a file."""

    @property
    def jwks_url(self) -> str | None: ...
    @property
    def jwks_file(self) -> str | None: ...


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
            self._accept(*read_jwks(read_jwks_file(Path(file)), str(file)), source=str(file))
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_auth(cls, auth: KeySource, base_dir: Path | None = None) -> JwksCache:
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
