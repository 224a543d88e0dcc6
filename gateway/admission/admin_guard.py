"""Who may read the /_gateway admin API: an ASGI layer in front of the whole admin app.

The route table, targets (internal URLs, Lambda ARNs), the config path, reload errors and
metrics are the gateway's topology. Every /_gateway path but `/_gateway/health` is checked
here, before FastAPI sees it, so an endpoint added later is covered without a word.

The client is the address trusted proxies vouch for (as for rate limits), never the raw
peer alone: behind a local reverse proxy every peer is loopback. Without an `admin:` block
only loopback clients get in; with one, the client must be in its `networks` (when given)
and present its credential (when given). Refusals are the JSON of route auth: 403 for an
address, 401 for a credential, and neither says what the admin API holds.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from gateway.admission.guard import FailureCounter, authenticator_for
from gateway.asgi import Scope
from gateway.config.model import RESERVED_PREFIX, AdminSpec
from gateway.errors import Forbidden, GatewayError, Unauthorized
from gateway.headers import HeaderView
from gateway.normalize import Network, parse_trusted

if TYPE_CHECKING:
    from gateway.admission.auth import Authenticator

HEALTH_PATH: Final = RESERVED_PREFIX + "/health"
LOOPBACK: Final[tuple[Network, ...]] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


@dataclass(frozen=True, slots=True)
class AdminGuard:
    """One config's admin policy; `networks=None` lets any address in (a credential must)."""

    networks: tuple[Network, ...] | None = LOOPBACK
    authenticator: Authenticator | None = None
    failures: FailureCounter | None = None

    @classmethod
    def build(cls, spec: AdminSpec | None, jwks: dict[str, Any], base_dir: Path) -> AdminGuard:
        if spec is None:
            return cls()
        networks = parse_trusted(spec.networks) if spec.networks else None
        authenticator = authenticator_for(spec.auth, jwks, base_dir)
        failures = FailureCounter.build(spec.failures) if authenticator is not None else None
        return cls(networks, authenticator, failures)

    def keeping(self, old: AdminGuard) -> AdminGuard:
        """This guard with `old`'s failure counts (its admin block is unchanged)."""
        return replace(self, failures=old.failures) if old.failures is not None else self

    async def check(self, scope: Scope, client: str | None) -> None:
        """Nothing when `client` may read the admin API; Forbidden or Unauthorized if not."""
        if self.networks is not None and not _inside(client, self.networks):
            raise Forbidden("the admin API is not open to this address")
        if self.authenticator is None:
            return
        # cold start: PyJWT and its crypto only for tables with auth
        from gateway.admission.auth import AuthError

        if self.failures is not None:
            await self.failures.refuse_if_blocked(client)
        headers = HeaderView(scope["headers"])
        try:
            self.authenticator.check_single(scope["headers"])
            await self.authenticator.authenticate(headers)
        except AuthError as exc:
            if self.failures is not None and self.authenticator.header in headers:
                self.failures.failed(client)
            error: type[GatewayError] = Forbidden if exc.status == 403 else Unauthorized
            challenge = ((b"www-authenticate", exc.www_authenticate.encode("latin-1")),)
            raise error(f"admin API: {exc.message}", headers=challenge) from None


def _inside(client: str | None, networks: tuple[Network, ...]) -> bool:
    if client is None:
        return False
    try:
        address = ipaddress.ip_address(client.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)
