"""`gateway explain`: what the gateway does with one request, as a report and as text.

The report comes from `gateway.decision.explain`, the code the proxy runs; the CLI builds it
from a file, the admin API (`GET /_gateway/explain`) from the table it serves, and both
print it with `render`, so the two modes say the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.decision import explain
from gateway.errors import GatewayError
from gateway.routing import RouteTable

EXPLAIN_PATH = "/_gateway/explain"


def wire_path(target: str) -> bytes:
    """The path part of a request target as a client puts it on the wire."""
    return target.split("?", 1)[0].split("#", 1)[0].encode("utf-8")


def parse_header(text: str) -> tuple[str, str]:
    """'Name: value' -> (name, value); ValueError when there is no colon or no name."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"{text!r}: write 'Name: value'")
    return name.strip().lower(), value.strip()


def report(
    table: RouteTable, method: str, target: str, headers: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """What happens to `method target` with `headers`, as plain JSON-ready data."""
    raw_headers = [(n.encode(), v.encode()) for n, v in headers]  # as a client sends them
    out: dict[str, Any] = {"method": method, "target": target}
    try:
        decision, verdicts = explain(table, method, wire_path(target), raw_headers)
    except GatewayError as error:
        return out | {
            "outcome": "refused",
            "status": error.status_code,
            "error": error.code,
            "message": error.message,
        }
    out |= {"path": decision.path, "forwarded": decision.raw_path.decode("latin-1")}
    if decision.reserved:
        return out | {"outcome": "reserved"}
    winner = next((v for v in verdicts if v.accepted), None)
    out["passed_over"] = [
        {"route": v.route.name, "path": v.route.path, "reason": v.reason}
        for v in verdicts
        if v is not winner
    ]
    if winner is None:
        return out | {"outcome": "no_route", "status": 404, "error": "no_route"}
    route = winner.route
    return out | {
        "outcome": "route",
        "route": route.name,
        "line": route.line,
        "why": winner.reason,
        "split": [[name, weight] for name, weight in route.split],
        "sticky": str(route.sticky) if route.sticky else None,
        "rewrite": [route.path, route.rewrite] if route.rewrite else None,
    }


def render(found: dict[str, Any]) -> list[str]:
    """The report as the lines `gateway explain` prints."""
    asked = f"{found['method']} {found['target']}"
    outcome = found["outcome"]
    if outcome == "refused":
        return [
            f"{asked}: refused, the gateway answers {found['status']} {found['error']}",
            f"  why: {found['message']}",
        ]
    if outcome == "reserved":
        return [f"{asked}: reserved for the admin API ({found['path']}), never routed"]
    lines = []
    if outcome == "no_route":
        lines.append(f"{asked}: no route matches (the gateway answers 404)")
    else:
        lines.append(f"{asked} -> route {found['route']!r} (line {found['line']})")
        lines.append(f"  why: {found['why']}")
    if found["path"] != found["target"].split("?", 1)[0]:
        lines.append(f"  normal form: {found['path']} (forwarded as {found['forwarded']})")
    if outcome == "route":
        lines += [f"  target {target}: {weight:g}%" for target, weight in found["split"]]
        if found["sticky"]:
            lines.append(f"  sticky on {found['sticky']}")
        if found["rewrite"]:
            lines.append(f"  path rewritten: {found['rewrite'][0]} -> {found['rewrite'][1]}")
    lines += [
        f"  passed over {v['route']!r} ({v['path']}): {v['reason']}" for v in found["passed_over"]
    ]
    return lines
