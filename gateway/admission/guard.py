"""Whether a matched request may go on: size limits, authorization, inbound rate.

Checked in that order, cheapest first, each refusal a clear JSON answer: 414 or 431 for an
oversized URL or headers, 413 for an announced body over the route's limit, 401 or 403
from the route's `auth`, 429 with Retry-After from its `rate`.

A client whose credentials failed too often (`auth.max_failures`) gets a 429
`too_many_auth_failures` before its credential is even looked at, so the right key found
by guessing is refused as well until its failures have drained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.admission.ratelimit import RateLimiter
from gateway.asgi import Scope
from gateway.config.model import CLIENT_KEY, ApiKeySpec, JwtSpec, KeySource, RateSpec, Route
from gateway.errors import (
    Forbidden,
    GatewayError,
    HeadersTooLarge,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    UriTooLong,
)
from gateway.fleet.rate import FleetRateLimiter
from gateway.fleet.store import StateStore
from gateway.headers import HeaderView, cookie_value
from gateway.normalize import RequestLimits, body_limit_exceeded, check_request

if TYPE_CHECKING:
    from gateway.admission.auth import Authenticator, Principal


class TooManyAuthFailures(RateLimited):
    code = "too_many_auth_failures"


@dataclass(slots=True)
class FailureCounter:
    """Failed authentications per client, a token bucket each: every failure takes a token,
    and a client with none left is refused until one is back. With `state:` the buckets are
    the fleet's (a guesser spread over 200 Lambda environments gets one budget, not 200):
    a request with a credential reads its client's bucket (one round trip), a failure takes a
    token without waiting; the local buckets count too, as the fallback while Redis is away."""

    limiter: RateLimiter
    fleet: FleetRateLimiter | None = None

    @classmethod
    def build(
        cls, spec: RateSpec | None, route: str = "", store: StateStore | None = None
    ) -> FailureCounter | None:
        if spec is None:
            return None
        limiter = RateLimiter(spec.per_second, spec.burst)
        if store is None:
            return cls(limiter)
        fleet = FleetRateLimiter(
            store, name=f"authfail:{route}", rate=spec.per_second, burst=spec.burst, local=limiter
        )
        return cls(limiter, fleet)

    def moved_to(self, other: FailureCounter) -> FailureCounter:
        """These local counts, with `other`'s fleet buckets (the store changed on a reload)."""
        return FailureCounter(self.limiter, other.fleet)

    async def refuse_if_blocked(self, client: str | None) -> None:
        key = f"client:{client}"
        wait = await self.fleet.peek(key) if self.fleet is not None else self.limiter.peek(key)
        if wait is not None:
            retry = max(1, math.ceil(wait))
            raise TooManyAuthFailures("too many failed authentications", retry_after=retry)

    def failed(self, client: str | None) -> None:
        key = f"client:{client}"
        if self.fleet is not None:
            self.fleet.take(key)
        else:
            self.limiter.check(key)


@dataclass(slots=True)
class RouteGuard:
    limits: RequestLimits
    authenticator: Authenticator | None = None
    rate: RateLimiter | FleetRateLimiter | None = None
    rate_key: KeySource = CLIENT_KEY
    failures: FailureCounter | None = None

    @classmethod
    def build(
        cls, route: Route, jwks: dict[str, Any], base_dir: Path, store: StateStore | None = None
    ) -> RouteGuard:
        """With a `store`, the route's `rate` holds across the fleet (the local bucket is
        its fallback while Redis is away)."""
        spec = route.limits
        limits = RequestLimits(spec.max_url, spec.max_header_bytes, spec.max_headers, spec.max_body)
        rate: RateLimiter | FleetRateLimiter | None = None
        if route.rate is not None:
            rate = RateLimiter(route.rate.per_second, route.rate.burst)
            if store is not None:
                rate = FleetRateLimiter(
                    store,
                    name=route.name,
                    rate=route.rate.per_second,
                    burst=route.rate.burst,
                    local=rate,
                )
        rate_key = route.rate.key if route.rate else CLIENT_KEY
        failures = (
            FailureCounter.build(route.auth_failures, route.name, store) if route.auth else None
        )
        auth = authenticator_for(route.auth, jwks, base_dir)
        return cls(limits, auth, rate, rate_key, failures)

    def carry_over(self, old: RouteGuard, old_route: Route, route: Route) -> None:
        """Keep `old`'s per-client state where the settings behind it are unchanged: else
        every reload (each `gateway shift`) hands every client a full bucket again."""
        if old_route.rate == route.rate and old.rate is not None:
            self.rate = old.rate
        if old_route.auth_failures == route.auth_failures and old.failures is not None:
            self.failures = old.failures

    async def admit(
        self, scope: Scope, raw_path: bytes, headers: HeaderView, client: str | None
    ) -> Principal | None:
        breach = check_request(
            self.limits, raw_path, scope.get("query_string", b""), scope["headers"]
        )
        if breach is not None:
            error = UriTooLong if breach.status == 414 else HeadersTooLarge
            raise error(breach.reason)
        length = headers.get("content-length")
        if (
            length is not None
            and length.isdigit()
            and body_limit_exceeded(self.limits, int(length))
        ):
            raise PayloadTooLarge(f"body of {length} bytes, over {self.limits.max_body_bytes}")
        principal = await self._authenticate(headers, scope["headers"], client)
        if self.rate is not None:
            key = self._rate_key(headers, client, principal)
            if isinstance(self.rate, FleetRateLimiter):
                wait = await self.rate.check(key)
            else:
                wait = self.rate.check(key)
            if wait is not None:
                raise RateLimited("too many requests", retry_after=max(1, math.ceil(wait)))
        return principal

    async def _authenticate(
        self, headers: HeaderView, raw: list[tuple[bytes, bytes]], client: str | None
    ) -> Principal | None:
        if self.authenticator is None:
            return None
        # cold start: PyJWT and its crypto only for tables with auth
        from gateway.admission.auth import AuthError

        if self.failures is not None and self.authenticator.header in headers:
            # Only a request that brings a credential can be a guess: one without it is
            # refused anyway, and reads no bucket (no Redis call for anonymous floods).
            await self.failures.refuse_if_blocked(client)
        try:
            self.authenticator.check_single(raw)
            return await self.authenticator.authenticate(headers)
        except AuthError as exc:
            # A credential that was sent and failed is a guess; a missing one is not.
            if (
                self.failures is not None
                and exc.status == 401
                and self.authenticator.header in headers
            ):
                self.failures.failed(client)
            error: type[GatewayError] = Forbidden if exc.status == 403 else Unauthorized
            challenge = ((b"www-authenticate", exc.www_authenticate.encode("latin-1")),)
            raise error(exc.message, headers=challenge) from None

    def _rate_key(self, headers: HeaderView, client: str | None, who: Principal | None) -> str:
        value = request_key(self.rate_key, headers, client, who)
        if value is None or self.rate_key.source == "client":
            return f"client:{client}"
        return f"{self.rate_key.source}:{value}"


def request_key(
    source: KeySource, headers: HeaderView, client: str | None, who: Principal | None
) -> str | None:
    """The key `source` names in this request (for `sticky` and `rate_key` alike), or None
    when the request carries none."""
    match source.source:
        case "client":
            return client
        case "header":
            return headers.get(source.name) or None
        case "cookie":
            return cookie_value(headers.get("cookie"), source.name)
        case "jwt":
            return who.subject if who is not None and who.subject else None


def authenticator_for(
    spec: JwtSpec | ApiKeySpec | None, jwks: dict[str, Any], base_dir: Path
) -> Authenticator | None:
    """The check of an `auth` block (a route's or the admin API's), sharing JWKS caches by
    source; built only where there is one: PyJWT and its crypto stay out of a cold start
    that does not need them."""
    if spec is None:
        return None
    # cold start: PyJWT and its crypto only for tables with auth
    from gateway.admission.auth import ApiKeyAuth, Authenticator, JwtAuth
    from gateway.admission.jwks import JwksCache

    match spec:
        case JwtSpec():
            auth = JwtAuth(spec.issuer, spec.audience, spec.jwks_url, spec.jwks_file, spec.scopes)
            key = spec.jwks_url or str(base_dir / (spec.jwks_file or ""))
            if key not in jwks:
                jwks[key] = JwksCache.for_auth(auth, base_dir)
            return Authenticator(auth, jwks[key])
        case ApiKeySpec() as keys:
            return Authenticator(ApiKeyAuth(keys.header, keys.key_hashes))
