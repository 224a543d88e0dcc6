"""Per-route authorization: JWTs verified against a JWKS served on loopback, and API keys."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.admission.auth import (
    ApiKeyAuth,
    Authenticator,
    AuthError,
    JwtAuth,
    Principal,
    hash_api_key,
)
from gateway.admission.jwks import JwksCache
from gateway.config.jwks_file import JwksError, parse_jwks
from tests.support.jwt_kit import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    claims,
    ec_key,
    forge,
    forge_signed_by,
    jwks,
    rsa_key,
)
from tests.support.servers import serve_in_thread

T = TypeVar("T")

RSA = rsa_key("rsa-1")
EC = ec_key("ec-1")
ROTATED = rsa_key("rsa-2")
IMPOSTOR = rsa_key("rsa-1")  # same kid as RSA, another key pair
API_KEY = "k3y-for-the-orders-api-0123456789"
OTHER_API_KEY = "k3y-for-the-billing-api-9876543210"


pytestmark = pytest.mark.usefixtures("close_the_import_time_event_loop")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def jwt_auth(
    scopes: tuple[str, ...] = ("orders.read",), audience: str | None = AUDIENCE
) -> JwtAuth:
    return JwtAuth(
        issuer=ISSUER, audience=audience, jwks_url=None, jwks_file="jwks.json", scopes=scopes
    )


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@contextmanager
def serve_jwks() -> Iterator[tuple[str, JwksServer]]:
    # The RSA key carries `alg`; the EC key does not, so its algorithm comes from kty and crv.
    server = JwksServer({"keys": [RSA.public_jwk(), EC.public_jwk(with_alg=False)]})
    with serve_in_thread(server, lifespan="off") as url:
        yield f"{url}/.well-known/jwks.json", server


@pytest.fixture(scope="module")
def shared_jwks() -> Iterator[tuple[str, JwksServer]]:
    """A JWKS server no test changes."""
    with serve_jwks() as served:
        yield served


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, JwksServer]]:
    """A JWKS server of the test's own, to change or to count fetches on."""
    with serve_jwks() as served:
        yield served


async def with_cache(
    url: str, body: Callable[[JwksCache], Awaitable[T]], clock: FakeClock | None = None
) -> T:
    cache = JwksCache(url=url, clock=clock or FakeClock())
    try:
        return await body(cache)
    finally:
        await cache.aclose()


def authenticate(url: str, headers: dict[str, str], auth: JwtAuth | None = None) -> Principal:
    async def body(cache: JwksCache) -> Principal:
        return await Authenticator(auth or jwt_auth(), cache).authenticate(headers)

    return asyncio.run(with_cache(url, body))


def refused(url: str, headers: dict[str, str], auth: JwtAuth | None = None) -> AuthError:
    with pytest.raises(AuthError) as caught:
        authenticate(url, headers, auth)
    return caught.value


def assert_not_leaked(error: AuthError, secret: str) -> None:
    for shown in (str(error), repr(error), error.message, error.www_authenticate):
        assert secret not in shown


@pytest.mark.parametrize("key", [RSA, EC], ids=["rs256", "es256"])
def test_a_valid_token_gives_its_subject_and_scopes(
    shared_jwks: tuple[str, JwksServer], key: SigningKey
) -> None:
    # GIVEN a token signed by a key of the served JWKS
    url, _ = shared_jwks
    token = key.sign(claims(sub="user-42"))

    # WHEN it is authenticated
    principal = authenticate(url, bearer(token))

    # THEN the principal carries the token's subject and scopes
    assert principal == Principal("user-42", frozenset({"orders.read", "orders.write"}), "jwt")


def now() -> int:
    """Read when a token is made, not at import: a long session must not age the tokens."""
    return int(time.time())


ACCEPTED = [
    pytest.param(lambda: claims(exp=now() - 10), id="expired-within-leeway"),
    pytest.param(claims(aud=["other-api", AUDIENCE]), id="aud-list"),
    pytest.param(
        claims(aud=None, client_id=AUDIENCE, token_use="access", scope="orders.read"),
        id="cognito-access-token",
    ),
    pytest.param(claims(token_use="id"), id="id-token"),
    pytest.param(claims(scope=None, scp=["orders.read"]), id="scp-list"),
    pytest.param(claims(scope=None, scp="orders.read profile"), id="scp-string"),
]


@pytest.mark.parametrize("payload", ACCEPTED)
def test_accepted_token_shapes(shared_jwks: tuple[str, JwksServer], payload: Any) -> None:
    # GIVEN a validly signed token of one of the accepted shapes
    url, _ = shared_jwks

    # WHEN it is authenticated
    token = RSA.sign(payload() if callable(payload) else payload)
    principal = authenticate(url, bearer(token))

    # THEN it is let through with the configured scope
    assert "orders.read" in principal.scopes


def test_without_a_configured_audience_any_audience_passes(
    shared_jwks: tuple[str, JwksServer],
) -> None:
    # GIVEN a route with no audience and no scopes, and a token for some other audience
    url, _ = shared_jwks
    token = RSA.sign(claims(aud="someone-else", scope=None))

    # WHEN it is authenticated
    principal = authenticate(url, bearer(token), jwt_auth(scopes=(), audience=None))

    # THEN it passes, with no scopes
    assert principal.scopes == frozenset()


def _hs256_with_public_key() -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": RSA.kid}
    return forge(header, claims(), hmac_secret=RSA.public_pem())


def _tampered() -> str:
    head, _, signature = RSA.sign(claims(scope="orders.read")).split(".")
    forged_payload = forge({}, claims(scope="orders.read admin"), hmac_secret=None).split(".")[1]
    return f"{head}.{forged_payload}.{signature}"


REJECTED: list[Any] = [
    pytest.param(lambda: RSA.sign(claims(exp=now() - 120)), "token expired", id="expired"),
    pytest.param(lambda: RSA.sign(claims(nbf=now() + 120)), "token not yet valid", id="not-yet"),
    pytest.param(
        lambda: RSA.sign(claims(iss="https://evil.example")),
        "token from another issuer",
        id="wrong-issuer",
    ),
    pytest.param(
        lambda: RSA.sign(claims(aud="billing-api")), "token for another audience", id="wrong-aud"
    ),
    pytest.param(
        lambda: RSA.sign(claims(aud=None, client_id="billing-app")),
        "token for another audience",
        id="cognito-wrong-client-id",
    ),
    pytest.param(lambda: RSA.sign(claims(exp=None)), "token lacks a required claim", id="no-exp"),
    pytest.param(
        lambda: RSA.sign(claims(token_use="refresh")),
        "token is neither an access nor an id token",
        id="refresh-token",
    ),
    pytest.param(
        lambda: forge({"alg": "none", "typ": "JWT", "kid": RSA.kid}, claims(), hmac_secret=None),
        "unsupported algorithm",
        id="alg-none",
    ),
    pytest.param(_hs256_with_public_key, "unsupported algorithm", id="hs256-public-key-secret"),
    pytest.param(
        lambda: forge_signed_by(RSA, {"alg": "RS256", "kid": EC.kid}, claims()),
        "algorithm does not match the signing key",
        id="rs256-on-ec-key",
    ),
    pytest.param(
        lambda: forge_signed_by(EC, {"alg": "ES256", "kid": RSA.kid}, claims()),
        "algorithm does not match the signing key",
        id="es256-on-rsa-key",
    ),
    pytest.param(lambda: IMPOSTOR.sign(claims()), "bad signature", id="impostor-same-kid"),
    pytest.param(_tampered, "bad signature", id="tampered-payload"),
    pytest.param(lambda: ROTATED.sign(claims()), "unknown signing key", id="unknown-kid"),
    pytest.param(
        lambda: forge_signed_by(RSA, {"alg": "RS256"}, claims()),
        "token names no signing key",
        id="no-kid",
    ),
    pytest.param(lambda: "not-a-jwt", "malformed token", id="garbled"),
    pytest.param(lambda: "bm90IGpzb24.e30.", "malformed token", id="header-not-json"),
    pytest.param(lambda: "e30.e30.", "unsupported algorithm", id="empty-header"),
]


@pytest.mark.parametrize(("make_token", "message"), REJECTED)
def test_a_bad_token_is_refused_with_401(
    shared_jwks: tuple[str, JwksServer], make_token: Callable[[], str], message: str
) -> None:
    # GIVEN a token that must not pass
    url, _ = shared_jwks
    token = make_token()

    # WHEN it is authenticated
    error = refused(url, bearer(token))

    # THEN it is a 401 invalid_token saying why, without quoting the token
    assert (error.status, error.code, error.message) == (401, "unauthorized", message)
    assert error.www_authenticate.startswith('Bearer error="invalid_token"')
    assert_not_leaked(error, token)


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        pytest.param({}, "Bearer", id="missing"),
        pytest.param({"authorization": "Bearer"}, 'Bearer error="invalid_token"', id="empty"),
        pytest.param(
            {"authorization": "Basic dXNlcjpwYXNz"}, 'Bearer error="invalid_token"', id="basic"
        ),
        pytest.param(
            {"authorization": "Bearer a.b.c extra"}, 'Bearer error="invalid_token"', id="two-words"
        ),
    ],
)
def test_a_missing_or_garbled_authorization_header_is_401(
    shared_jwks: tuple[str, JwksServer], headers: dict[str, str], challenge: str
) -> None:
    # GIVEN a request without a usable bearer token
    url, server = shared_jwks
    fetches = server.fetches

    # WHEN it is authenticated
    error = refused(url, headers)

    # THEN it is a 401 whose challenge asks for a bearer token, and no JWKS was fetched
    assert (error.status, error.code) == (401, "unauthorized")
    assert error.www_authenticate.startswith(challenge)
    assert server.fetches == fetches


def test_a_token_without_the_required_scope_is_403(shared_jwks: tuple[str, JwksServer]) -> None:
    # GIVEN a valid token granting only orders.write, on a route needing orders.read
    url, _ = shared_jwks
    token = RSA.sign(claims(scope="orders.write"))

    # WHEN it is authenticated
    error = refused(url, bearer(token))

    # THEN it is a 403 insufficient_scope naming the scope needed
    assert (error.status, error.code) == (403, "forbidden")
    assert error.www_authenticate == 'Bearer error="insufficient_scope", scope="orders.read"'
    assert_not_leaked(error, token)


def test_an_unknown_kid_refetches_once_then_is_rate_limited(
    jwks_server: tuple[str, JwksServer],
) -> None:
    # GIVEN a cache that has fetched the JWKS, whose issuer then rotates in a new key
    url, server = jwks_server
    clock = FakeClock()

    async def body(cache: JwksCache) -> None:
        authenticator = Authenticator(jwt_auth(), cache)
        await authenticator.authenticate(bearer(RSA.sign(claims())))
        server.document = jwks(RSA, ROTATED)
        clock.advance(30)

        # WHEN a token signed by the new key arrives
        principal = await authenticator.authenticate(bearer(ROTATED.sign(claims())))

        # THEN the JWKS is fetched again, once, and the token passes
        assert principal.subject == "user-1"
        assert server.fetches == 2

        # WHEN another unknown kid arrives within 30 s
        with pytest.raises(AuthError, match="unknown signing key"):
            await authenticator.authenticate(bearer(rsa_key("rsa-3").sign(claims())))
        # THEN no fetch happens, until 30 s have passed
        assert server.fetches == 2
        clock.advance(30)
        with pytest.raises(AuthError, match="unknown signing key"):
            await authenticator.authenticate(bearer(rsa_key("rsa-3").sign(claims())))
        assert server.fetches == 3

    asyncio.run(with_cache(url, body, clock))


def test_concurrent_requests_with_an_unknown_kid_share_one_fetch(
    jwks_server: tuple[str, JwksServer],
) -> None:
    # GIVEN a cache that has never fetched
    url, server = jwks_server

    async def body(cache: JwksCache) -> list[Principal]:
        authenticator = Authenticator(jwt_auth(), cache)
        token = RSA.sign(claims())
        # WHEN twenty requests arrive at once
        return await asyncio.gather(*(authenticator.authenticate(bearer(token)) for _ in range(20)))

    principals = asyncio.run(with_cache(url, body))

    # THEN all pass on a single fetch
    assert len(principals) == 20
    assert server.fetches == 1


def test_known_keys_are_refreshed_every_five_minutes(jwks_server: tuple[str, JwksServer]) -> None:
    # GIVEN a cache holding the JWKS
    url, server = jwks_server
    clock = FakeClock()
    token = EC.sign(claims())

    async def body(cache: JwksCache) -> None:
        authenticator = Authenticator(jwt_auth(), cache)
        # WHEN requests with a known kid keep coming for just under five minutes
        for _ in range(10):
            await authenticator.authenticate(bearer(token))
            clock.advance(29.9)
        # THEN the JWKS was fetched only once
        assert server.fetches == 1
        # WHEN five minutes have passed
        clock.advance(1)
        await authenticator.authenticate(bearer(token))
        # THEN it is fetched again
        assert server.fetches == 2

    asyncio.run(with_cache(url, body, clock))


def _answer_500(server: JwksServer, stack: ExitStack) -> None:
    server.status = 500


def _serve_garbage(server: JwksServer, stack: ExitStack) -> None:
    server.document = {"keys": "nope"}


def _shut_down(server: JwksServer, stack: ExitStack) -> None:
    stack.close()


@pytest.mark.parametrize(
    "break_server",
    [_answer_500, _serve_garbage, _shut_down],
    ids=["http-500", "garbage-jwks", "connection-refused"],
)
def test_stale_keys_still_verify_when_the_jwks_server_fails(
    break_server: Callable[[JwksServer, ExitStack], None],
) -> None:
    # GIVEN a cache that fetched the JWKS, whose server then fails
    server = JwksServer(jwks(RSA))
    clock = FakeClock()
    token = RSA.sign(claims())

    async def body(cache: JwksCache) -> None:
        authenticator = Authenticator(jwt_auth(), cache)
        await authenticator.authenticate(bearer(token))
        await asyncio.to_thread(break_server, server, stack)

        # WHEN the keys are due for a refresh and a token arrives
        clock.advance(301)
        principal = await authenticator.authenticate(bearer(token))

        # THEN the refresh fails quietly and the cached key still verifies
        assert principal.subject == "user-1"
        assert cache.kids == {RSA.kid}

    with ExitStack() as stack:
        url = stack.enter_context(serve_in_thread(server, lifespan="off"))
        asyncio.run(with_cache(url, body, clock))


def test_a_failed_first_fetch_is_not_retried_for_30_seconds() -> None:
    # GIVEN a JWKS server answering 503
    server = JwksServer(jwks(RSA))
    server.status = 503
    clock = FakeClock()
    token = RSA.sign(claims())

    async def body(cache: JwksCache) -> None:
        authenticator = Authenticator(jwt_auth(), cache)
        # WHEN two requests come, the server recovers, and a third comes 30 s later
        for _ in range(2):
            with pytest.raises(AuthError, match="unknown signing key"):
                await authenticator.authenticate(bearer(token))
        server.status = 200
        clock.advance(30)
        principal = await authenticator.authenticate(bearer(token))
        # THEN the server was asked only twice, and the third request passes
        assert server.fetches == 2
        assert principal.subject == "user-1"

    with serve_in_thread(server, lifespan="off") as url:
        asyncio.run(with_cache(url, body, clock))


def test_a_jwks_file_is_read_once_at_construction(tmp_path: Path) -> None:
    # GIVEN a JWKS file next to the config, named relatively
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "jwks.json").write_text(json.dumps(jwks(RSA, EC)), encoding="utf-8")
    auth = JwtAuth(ISSUER, AUDIENCE, None, "keys/jwks.json", ("orders.read",))
    cache = JwksCache.for_auth(auth, base_dir=tmp_path)
    (tmp_path / "keys" / "jwks.json").unlink()

    # WHEN tokens by both keys are authenticated after the file is gone
    async def body() -> list[Principal]:
        authenticator = Authenticator(auth, cache)
        tokens = (RSA.sign(claims()), EC.sign(claims()))
        return [await authenticator.authenticate(bearer(token)) for token in tokens]

    principals = asyncio.run(body())

    # THEN both pass, from the keys read at construction
    assert [principal.kind for principal in principals] == ["jwt", "jwt"]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(None, id="missing-file"),
        pytest.param("{not json", id="not-json"),
        pytest.param('{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}', id="only-hmac"),
    ],
)
def test_an_unusable_jwks_file_fails_at_construction(tmp_path: Path, content: str | None) -> None:
    # GIVEN a JWKS file that is missing, garbled, or holds no usable key
    path = tmp_path / "jwks.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")

    # WHEN a cache is built from it, THEN it fails at once, naming the file
    with pytest.raises(JwksError, match="jwks.json"):
        JwksCache(file=path)


def test_only_rs256_and_es256_signing_keys_are_kept() -> None:
    # GIVEN a JWKS mixing usable keys with an HMAC key, a P-384 key, an encryption key,
    # a key without kid and a key whose alg is not allowed
    p384 = {**EC.public_jwk(with_alg=False), "kid": "p384", "crv": "P-384"}
    document = {
        "keys": [
            RSA.public_jwk(),
            EC.public_jwk(with_alg=False),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            p384,
            {**ROTATED.public_jwk(), "kid": "enc", "use": "enc"},
            {k: v for k, v in ROTATED.public_jwk().items() if k != "kid"},
            {**ROTATED.public_jwk(), "kid": "ps256", "alg": "PS256"},
            "not-a-key",
        ]
    }

    # WHEN it is parsed
    keys = parse_jwks(json.dumps(document).encode(), source="test")

    # THEN only the RS256 and ES256 signing keys remain
    assert {kid: key.algorithm_name for kid, key in keys.items()} == {
        "rsa-1": "RS256",
        "ec-1": "ES256",
    }


API_KEYS = ApiKeyAuth(
    header="X-Api-Key", key_hashes=frozenset({hash_api_key(OTHER_API_KEY), hash_api_key(API_KEY)})
)


def check_api_key(headers: dict[str, str]) -> Principal:
    return asyncio.run(Authenticator(API_KEYS).authenticate(headers))


def test_a_right_api_key_passes() -> None:
    # GIVEN a route accepting two keys, and a request with one of them
    headers = {"x-api-key": API_KEY}

    # WHEN it is authenticated
    principal = check_api_key(headers)

    # THEN it passes as an API-key principal, with no subject to stick on
    assert principal == Principal(None, frozenset(), "api_key")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param({}, "missing API key", id="missing"),
        pytest.param({"x-api-key": API_KEY + "x"}, "invalid API key", id="wrong"),
        pytest.param({"x-api-key": hash_api_key(API_KEY)}, "invalid API key", id="the-hash"),
        pytest.param({"authorization": f"Bearer {API_KEY}"}, "missing API key", id="as-bearer"),
    ],
)
def test_a_missing_or_wrong_api_key_is_401(headers: dict[str, str], message: str) -> None:
    # GIVEN a request without a right key
    # WHEN it is authenticated
    with pytest.raises(AuthError) as caught:
        check_api_key(headers)

    # THEN it is a 401 saying why, without quoting any key
    error = caught.value
    assert (error.status, error.code, error.message) == (401, "unauthorized", message)
    assert error.www_authenticate == 'ApiKey header="X-Api-Key"'
    for secret in (API_KEY, *headers.values()):
        assert_not_leaked(error, secret)


def test_api_keys_are_stored_as_sha256_hashes() -> None:
    # GIVEN a key, WHEN it is hashed, THEN it reads sha256:<64 hex> and does not contain the key
    hashed = hash_api_key(API_KEY)
    assert hashed.startswith("sha256:")
    assert len(hashed) == len("sha256:") + 64
    assert API_KEY not in hashed


def test_jwt_auth_without_a_jwks_cache_is_refused() -> None:
    # GIVEN a JWT auth block, WHEN an authenticator is built without keys, THEN it refuses
    with pytest.raises(ValueError, match="JwksCache"):
        Authenticator(jwt_auth(), None)
