"""Which route a request takes, decided once: normal form -> reserved? -> method -> match.

The proxy and `gateway explain` (from a file, or asking a running gateway) call the same
`decide`, so what explain says is what the gateway does.

Methods are case-sensitive tokens (RFC 9110 §9.1), and the method matched must be the method
the upstream acts on: an HTTP client library may upper-case what it forwards (aiohttp does),
so `post` would be matched as a stranger to every `methods: [POST]` route and then arrive
upstream as `POST`. A method with a lower-case letter is refused with 400 `bad_method`.
A method-override header (`X-HTTP-Method-Override` and its kin) names the method an upstream
may act on instead: the request is refused unless that method would take the very same route,
so a route's `methods` and `auth` hold whichever method the upstream honours.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote

from gateway.asgi import Scope
from gateway.config.model import RESERVED_PREFIX
from gateway.errors import BadMethod, BadPath
from gateway.headers import HeaderView
from gateway.normalize import PathRefused, normalize_path
from gateway.routing import RouteMatch, RouteTable, Verdict

OVERRIDE_HEADERS = ("x-http-method-override", "x-http-method", "x-method-override")
# RFC 9110 tchar, less the lower-case letters.
_METHOD_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one request: reserved for the admin API, or a match (None: 404)."""

    method: str
    path: str  # the normal form routes are matched on
    raw_path: bytes  # the normal form forwarded
    reserved: bool
    match: RouteMatch | None


def is_admin_path(path: str) -> bool:
    return path.startswith(RESERVED_PREFIX) and (
        len(path) == len(RESERVED_PREFIX) or path[len(RESERVED_PREFIX)] == "/"
    )


def request_target(scope: Scope) -> bytes:
    """The path as the client sent it, still encoded."""
    raw_path: bytes | None = scope.get("raw_path")
    if raw_path:
        return raw_path
    return quote(scope["path"], safe="/:@!$&'()*+,;=-._~").encode("ascii")


def normal_form(raw_path: bytes) -> tuple[str, bytes]:
    """The path to match and the raw path to forward: one normal form, so no spelling of a
    path (dot segments, escapes, doubled slashes) reaches a route its normal form would not."""
    try:
        path, raw = normalize_path(raw_path)
    except PathRefused as exc:
        raise BadPath(f"path refused: {exc.reason}") from None
    if ";" in path:
        # Servlet containers read /admin;x/users as /admin/users: match it as they will.
        path = "/".join(segment.partition(";")[0] for segment in path.split("/"))
    return path, raw


def check_method(method: str, where: str = "method") -> None:
    if not method or not _METHOD_CHARS.issuperset(method):
        raise BadMethod(
            f"{where} {method[:40]!r} refused: methods are case-sensitive tokens (RFC 9110), "
            "spelled in upper case here"
        )


def decide(
    table: RouteTable, method: str, raw_path: bytes, raw_headers: Iterable[tuple[bytes, bytes]]
) -> Decision:
    """Raises BadPath or BadMethod (400) for a request no route may see."""
    raw_headers = list(raw_headers)
    sent = unquote(raw_path.decode("latin-1"), encoding="latin-1")
    if is_admin_path(sent):
        # The entry hands these to the admin API before the proxy sees them.
        return Decision(method, sent, raw_path, reserved=True, match=None)
    path, raw = normal_form(raw_path)
    if is_admin_path(path):
        return Decision(method, path, raw, reserved=True, match=None)
    check_method(method)
    headers = HeaderView(raw_headers)
    matched = table.match(method, path, headers)
    for override in _overrides(raw_headers):
        check_method(override, "method override")
        other = table.match(override, path, headers)
        if _route_name(other) != _route_name(matched):
            raise BadMethod(
                f"method override {override} would take route {_route_name(other)} "
                f"where {method} takes {_route_name(matched)}"
            )
    return Decision(method, path, raw, reserved=False, match=matched)


def explain(
    table: RouteTable, method: str, raw_path: bytes, raw_headers: Iterable[tuple[bytes, bytes]]
) -> tuple[Decision, list[Verdict]]:
    """The decision, and every route covering the path with why it won or was passed over."""
    raw_headers = list(raw_headers)
    decision = decide(table, method, raw_path, raw_headers)
    if decision.reserved:
        return decision, []
    return decision, table.explain(method, decision.path, HeaderView(raw_headers))


def _overrides(raw_headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    return [
        value.decode("latin-1").strip()
        for name, value in raw_headers
        if name.decode("latin-1").lower() in OVERRIDE_HEADERS
    ]


def _route_name(match: RouteMatch | None) -> str:
    return "none (404)" if match is None else repr(match.route.name)
