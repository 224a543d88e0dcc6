"""RouteTable.match(method, path, headers) -> RouteMatch | None.

Routes are compiled once into a trie keyed by path segment, so a match walks the request's
segments (O(depth)) whatever the number of routes. At each node the routes ending there are
kept in priority order (more method/header conditions first, then file order); the deepest
node with an accepting route wins, which is "longest prefix on whole segments".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes, unquote_to_bytes

from gateway.config.model import GatewayConfig, Route


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    depth: int

    def upstream_path(self, raw_path: bytes) -> bytes:
        """The raw path to forward: the matched prefix replaced by `rewrite` when set."""
        rewrite = self.route.rewrite
        if rewrite is None:
            return raw_path
        rest = _raw_rest(raw_path, self.depth)
        base = rewrite.rstrip("/").encode("ascii")
        return base + b"".join(b"/" + segment for segment in rest) or b"/"


def _raw_rest(raw_path: bytes, depth: int) -> list[bytes]:
    """The raw segments after the first `depth` decoded ones.

    Matching ran on the decoded path, where an escaped slash (%2F) splits a segment in two;
    count decoded segments per raw one so the rest keeps its original bytes.
    """
    raw = raw_path.split(b"/")[1:]
    seen = 0
    for index, segment in enumerate(raw):
        if seen >= depth:
            return raw[index:]
        before = seen
        seen += 1 + segment.lower().count(b"%2f")
        if seen > depth:
            # The prefix ends inside an escaped segment: re-escape the decoded remainder.
            decoded = unquote_to_bytes(b"/".join(raw[index:])).split(b"/")
            return [quote_from_bytes(p, safe="").encode() for p in decoded[depth - before :]]
    return []


@dataclass(frozen=True, slots=True)
class Verdict:
    route: Route
    accepted: bool
    reason: str


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()


def path_segments(path: str) -> list[str]:
    return [] if path == "/" else path[1:].split("/")


def method_allowed(route: Route, method: str) -> bool:
    """HEAD is a GET without the body (RFC 9110 §9.3.2): a GET route takes it, auth and all."""
    methods = route.methods
    return methods is None or method in methods or (method == "HEAD" and "GET" in methods)


def accepts(route: Route, method: str, headers: Mapping[str, str]) -> bool:
    if not method_allowed(route, method):
        return False
    return all(headers.get(name) == value for name, value in route.headers)


class RouteTable:
    """An immutable, compiled view of a config's routes."""

    __slots__ = ("_root", "config")

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._root = _Node()
        order = {route.name: index for index, route in enumerate(config.routes)}
        for route in config.routes:
            node = self._root
            for segment in path_segments(route.path):
                node = node.children.setdefault(segment, _Node())
            node.routes = tuple(
                sorted((*node.routes, route), key=lambda r: (-r.conditions, order[r.name]))
            )

    def _trail(self, path: str) -> list[tuple[int, _Node]]:
        node = self._root
        trail = [(0, node)]
        for depth, segment in enumerate(path_segments(path), start=1):
            child = node.children.get(segment)
            if child is None:
                break
            node = child
            trail.append((depth, node))
        return trail

    def match(self, method: str, path: str, headers: Mapping[str, str]) -> RouteMatch | None:
        for depth, node in reversed(self._trail(path)):
            for route in node.routes:
                if accepts(route, method, headers):
                    return RouteMatch(route, depth)
        return None

    def explain(self, method: str, path: str, headers: Mapping[str, str]) -> list[Verdict]:
        """Every route whose path covers `path`, in the order they are tried, with why."""
        verdicts: list[Verdict] = []
        winner_found = False
        for _, node in reversed(self._trail(path)):
            for route in node.routes:
                reason = _refusal(route, method, headers)
                if reason is None and not winner_found:
                    winner_found = True
                    verdicts.append(Verdict(route, True, _why_won(route, verdicts)))
                elif reason is None:
                    verdicts.append(Verdict(route, False, "matches too, but a route above won"))
                else:
                    verdicts.append(Verdict(route, False, reason))
        return verdicts


def _refusal(route: Route, method: str, headers: Mapping[str, str]) -> str | None:
    if route.methods is not None and not method_allowed(route, method):
        return f"method {method} not in {sorted(route.methods)}"
    for name, value in route.headers:
        got = headers.get(name)
        if got != value:
            return f"header {name}: wants {value!r}, request has {got!r}"
    return None


def _why_won(route: Route, before: list[Verdict]) -> str:
    conditions = f"{route.conditions} method/header condition(s)"
    if not before:
        return f"longest matching prefix {route.path!r} with {conditions}"
    return f"first accepting route in priority order (prefix {route.path!r}, {conditions})"
