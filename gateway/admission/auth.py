"""Per-route authorization: bearer JWTs checked against a JWKS, or API keys checked by hash.

Only RS256 and ES256 are accepted, and the algorithm is bound to the JWKS key found by `kid`,
never taken from the token alone: that closes the `alg: none` and the HS256-keyed-with-the-
public-key confusion attacks. No error message or log line quotes a token or a key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import jwt

from gateway.admission.jwks import JwksCache
from gateway.config.jwks_file import ALGORITHMS

TOKEN_USES: Final = frozenset({"access", "id"})
MAX_TOKEN_CHARS: Final = 8192
HASH_PREFIX: Final = "sha256:"


@dataclass(frozen=True, slots=True)
class JwtAuth:
    issuer: str
    audience: str | None
    jwks_url: str | None
    jwks_file: str | None
    scopes: tuple[str, ...]
    leeway: float = 30.0


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    header: str
    key_hashes: frozenset[str]


Auth = JwtAuth | ApiKeyAuth
PrincipalKind = Literal["jwt", "api_key"]


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str | None
    scopes: frozenset[str]
    kind: PrincipalKind


class AuthError(Exception):
    """A refused request: 401 (no or bad credentials) or 403 (valid, but not enough scope)."""

    def __init__(
        self, status: Literal[401, 403], code: str, message: str, www_authenticate: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.www_authenticate = www_authenticate


def _invalid_token(message: str) -> AuthError:
    challenge = f'Bearer error="invalid_token", error_description="{message}"'
    return AuthError(401, "unauthorized", message, challenge)


def hash_api_key(key: str) -> str:
    return HASH_PREFIX + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


# Checked in order: the first matching class gives the message.
_JWT_ERRORS: Final[tuple[tuple[type[jwt.PyJWTError], str], ...]] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidIssuerError, "token from another issuer"),
    (jwt.MissingRequiredClaimError, "token lacks a required claim"),
    (jwt.InvalidAlgorithmError, "algorithm does not match the signing key"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidKeyError, "unusable signing key"),
)


class Authenticator:
    """Checks one route's credentials; built once per config, shared by all requests."""

    def __init__(self, auth: Auth, jwks: JwksCache | None = None) -> None:
        self.auth = auth
        self._jwks = jwks
        self._header = ""
        self._hashes: tuple[bytes, ...] = ()
        match auth:
            case JwtAuth() if jwks is None:
                raise ValueError("JWT authentication needs a JwksCache")
            case ApiKeyAuth():
                self._header = auth.header.lower()
                self._hashes = tuple(stored.lower().encode() for stored in sorted(auth.key_hashes))

    @property
    def header(self) -> str:
        """The header (lower case) that carries this route's credential."""
        return self._header or "authorization"

    def check_single(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        """AuthError unless the credential header comes at most once: with two, the gateway
        would check one and an upstream might trust the other."""
        wanted = self.header.encode("latin-1")
        if sum(1 for name, _ in raw if name.lower() == wanted) > 1:
            message = f"more than one {self.header} header"
            raise AuthError(401, "unauthorized", message, self._challenge())

    def _challenge(self) -> str:
        if isinstance(self.auth, ApiKeyAuth):
            return f'ApiKey header="{self.auth.header}"'
        return 'Bearer error="invalid_request"'

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller behind `headers` (names in lower case, as ASGI has them), or AuthError."""
        match self.auth:
            case JwtAuth() as auth if self._jwks is not None:
                return await _authenticate_jwt(auth, self._jwks, headers.get("authorization"))
            case ApiKeyAuth() as auth:
                return self._authenticate_api_key(auth, headers.get(self._header))
        raise AssertionError("unreachable: checked in __init__")

    def _authenticate_api_key(self, auth: ApiKeyAuth, presented: str | None) -> Principal:
        challenge = f'ApiKey header="{auth.header}"'
        if presented is None:
            raise AuthError(401, "unauthorized", "missing API key", challenge)
        candidate = hash_api_key(presented).encode()
        matched = False
        for stored in self._hashes:  # every one, so the time taken says nothing of which
            matched |= hmac.compare_digest(stored, candidate)
        if not matched:
            raise AuthError(401, "unauthorized", "invalid API key", challenge)
        return Principal(subject=None, scopes=frozenset(), kind="api_key")


async def _authenticate_jwt(auth: JwtAuth, jwks: JwksCache, authorization: str | None) -> Principal:
    token = _bearer_token(authorization)
    kid = _key_id(token)
    key = await jwks.key(kid)
    if key is None:
        raise _invalid_token("unknown signing key")
    claims = _verified_claims(token, key, auth)
    _check_audience(claims, auth.audience)
    token_use = claims.get("token_use", "access")
    if not isinstance(token_use, str) or token_use not in TOKEN_USES:
        raise _invalid_token("token is neither an access nor an id token")
    granted = _granted_scopes(claims)
    if not granted.issuperset(auth.scopes):
        challenge = f'Bearer error="insufficient_scope", scope="{" ".join(auth.scopes)}"'
        raise AuthError(403, "forbidden", "token lacks a required scope", challenge)
    subject = claims.get("sub")
    return Principal(subject if isinstance(subject, str) else None, granted, "jwt")


def _bearer_token(authorization: str | None) -> str:
    if authorization is None:
        # RFC 6750 §3.1: no error code when the request carried no credentials at all.
        raise AuthError(401, "unauthorized", "missing bearer token", "Bearer")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token or len(token) > MAX_TOKEN_CHARS:
        raise _invalid_token("malformed authorization header")
    return token


def _key_id(token: str) -> str:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _invalid_token("malformed token") from exc
    if header.get("alg") not in ALGORITHMS:
        raise _invalid_token("unsupported algorithm")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise _invalid_token("token names no signing key")
    return kid


def _verified_claims(token: str, key: jwt.PyJWK, auth: JwtAuth) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[key.algorithm_name],
            issuer=auth.issuer,
            leeway=auth.leeway,
            options={
                "require": ["exp", "iss"],
                "verify_aud": False,  # checked below: Cognito access tokens carry client_id
                "enforce_minimum_key_length": True,
            },
        )
    except jwt.PyJWTError as exc:
        message = next((text for kind, text in _JWT_ERRORS if isinstance(exc, kind)), None)
        raise _invalid_token(message or "invalid token") from exc
    return claims


def _check_audience(claims: Mapping[str, Any], audience: str | None) -> None:
    if audience is None:
        return
    if "aud" in claims:
        aud = claims["aud"]
        matched = aud == audience or (isinstance(aud, list) and audience in aud)
    else:
        matched = claims.get("client_id") == audience
    if not matched:
        raise _invalid_token("token for another audience")


def _granted_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    granted: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            granted.update(value.split())
        elif isinstance(value, list):
            granted.update(item for item in value if isinstance(item, str))
    return frozenset(granted)
