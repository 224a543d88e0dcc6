"""Keys, JWKS documents and tokens for the auth tests: real RSA and P-256 keys, PyJWT-signed,
plus hand-forged tokens (alg none, HS256) that PyJWT refuses to make, and a JWKS server app."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.asgi import Receive, Scope, Send

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc"
AUDIENCE = "orders-api"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def public_jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", **({"alg": self.alg} if with_alg else {})}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **header}
        )

    def raw_signature(self, signing_input: bytes) -> bytes:
        """A signature by this key over `signing_input`, whatever the token's header claims."""
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JOSE wants r || s, not DER


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def jwks(*keys: SigningKey, with_alg: bool = True) -> dict[str, Any]:
    return {"keys": [key.public_jwk(with_alg=with_alg) for key in keys]}


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims of a valid token for ISSUER/AUDIENCE; an override of None drops that claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "exp": now + 300,
        "scope": "orders.read orders.write",
    }
    merged = {**base, **overrides}
    return {name: value for name, value in merged.items() if value is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signing_input(header: dict[str, Any], payload: dict[str, Any]) -> bytes:
    encoded = (b64url(json.dumps(part).encode()) for part in (header, payload))
    return ".".join(encoded).encode("ascii")


def forge(header: dict[str, Any], payload: dict[str, Any], *, hmac_secret: bytes | None) -> str:
    """A compact JWS signed with HMAC-SHA256 under `hmac_secret`, or unsigned when None."""
    message = signing_input(header, payload)
    signature = (
        b"" if hmac_secret is None else hmac.new(hmac_secret, message, hashlib.sha256).digest()
    )
    return f"{message.decode('ascii')}.{b64url(signature)}"


def forge_signed_by(key: SigningKey, header: dict[str, Any], payload: dict[str, Any]) -> str:
    message = signing_input(header, payload)
    return f"{message.decode('ascii')}.{b64url(key.raw_signature(message))}"


class JwksServer:
    """A minimal ASGI app serving `document` with `status`, counting the fetches."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.status = 200
        self.fetches = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.fetches += 1
        body = json.dumps(self.document).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
