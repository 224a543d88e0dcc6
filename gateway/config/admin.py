"""The security sections of routes.yaml: the top-level `admin:` block and `auth.max_failures`.

Same conventions as `config_sections`: each reader records every problem on the checker
with its line and returns the frozen object (or a default when the section is wrong).
"""

from __future__ import annotations

import ipaddress

from ruamel.yaml.comments import CommentedMap

from gateway.config.check import Checker, key_line
from gateway.config.model import DEFAULT_MAX_FAILURES, AdminSpec, AuthSpec, RateSpec
from gateway.config.sections import Reader, api_keys_block, jwt_block
from gateway.config.units import rate_parts

ADMIN_KEYS = ("api_keys", "jwt", "networks", "max_failures")


def auth_failures(spec: CommentedMap, where: str, checker: Checker) -> RateSpec | None:
    """`auth.max_failures`: how many failed authentications a client may have, as a rate
    (`10/m`: ten, then one more every 6 s); `off` to not count. Default 10/m with `auth`."""
    node = spec.get("auth")
    if not isinstance(node, CommentedMap):
        return None
    return max_failures(Reader(node, f"{where}.auth", checker))


def max_failures(read: Reader) -> RateSpec | None:
    value = read.node.get("max_failures")
    if value is None:
        return DEFAULT_MAX_FAILURES
    if value is False or value == "off":
        return None
    try:
        count, period = rate_parts(value)
    except ValueError:
        count, period = 0.0, 1
    if count < 1 or count != int(count):
        read.fail("max_failures", f"{value!r}: a whole number per time, like 10/m, or off")
        return DEFAULT_MAX_FAILURES
    return RateSpec(count / period, int(count))


def admin(document: CommentedMap, checker: Checker) -> AdminSpec | None:
    """The top-level `admin:` block: `api_keys` or `jwt` (as in a route's `auth`) and/or
    `networks: [CIDR, ...]`."""
    node = Reader(document, "config", checker).mapping("admin")
    if node is None:
        return None
    checker.unknown_keys(node, ADMIN_KEYS, "admin")
    read = Reader(node, "admin", checker)
    if not any(key in node for key in ADMIN_KEYS[:3]):
        checker.problem(key_line(document, "admin"), "admin", "needs api_keys, jwt or networks")
        return None
    if "jwt" in node and "api_keys" in node:
        read.fail("jwt", "give one of 'jwt' or 'api_keys', not both")
        return None
    credential: AuthSpec | None = None
    if "jwt" in node:
        jwt = read.mapping("jwt")
        credential = jwt_block(Reader(jwt, "admin.jwt", checker)) if jwt is not None else None
    elif "api_keys" in node:
        keys = read.mapping("api_keys")
        credential = api_keys_block(Reader(keys, "admin.api_keys", checker)) if keys else None
    return AdminSpec(credential, _networks(read), max_failures(read))


def _networks(read: Reader) -> tuple[str, ...]:
    value = read.node.get("networks", [])
    if not isinstance(value, list) or ("networks" in read.node and not value):
        read.fail("networks", "a non-empty list of CIDR blocks, such as [10.0.0.0/8]")
        return ()
    for item in value:
        try:
            ipaddress.ip_network(str(item).strip(), strict=True)
        except ValueError as exc:
            read.fail("networks", f"{item!r} is not a CIDR block ({exc})")
    return tuple(str(item).strip() for item in value)
