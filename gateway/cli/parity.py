"""`gateway parity URL [ROUTE] [--window 15m] [-o json]`: a running gateway's parity report;
`gateway parity ignore FILE ROUTE PATH`: a field path added to the route's `compare.ignore`,
through the same text surgery as `shift` (checked before written, written atomically, the
rest of the file byte for byte)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from gateway.cli.credentials import add_admin_key, admin_headers
from gateway.config.file_store import write_atomically
from gateway.config.load import load_text
from gateway.config.model import ConfigError, GatewayConfig
from gateway.config.stored import StoreError
from gateway.parity.paths import path_problem
from gateway.parity.report import render_text
from gateway.rollouts.yaml_text import (
    Refused,
    dump,
    round_trip_yaml,
    transplant,
)

PARITY_PATH = "/_gateway/parity"
USAGE = (
    "usage: gateway parity URL [ROUTE] [--window 15m] [-o json]\n"
    "       gateway parity ignore FILE ROUTE PATH"
)


def read_parity(url: str, route: str | None, window: str | None, key: str | None) -> dict[str, Any]:
    """The gateway's report; raises Refused saying why it could not be read."""
    query = urlencode([(k, v) for k, v in (("route", route), ("window", window)) if v])
    address = f"{url.rstrip('/')}{PARITY_PATH}" + (f"?{query}" if query else "")
    ask = urllib.request.Request(address, headers=admin_headers(key))
    try:
        with urllib.request.urlopen(ask, timeout=10) as answer:
            found: dict[str, Any] = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        hint = " (give --admin-key or GATEWAY_ADMIN_KEY)" if exc.code in (401, 403) else ""
        detail = exc.read(2048).decode("utf-8", "replace")
        raise Refused(f"{address}: {exc.code} {exc.reason}{hint} {detail}".rstrip()) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise Refused(f"cannot read {address}: {getattr(exc, 'reason', exc)}") from exc
    return found


def add_ignore(path: Path, route: str, field: str) -> str:
    """Add `field` to the route's shadow.compare.ignore; what was done, in a sentence."""
    problem = path_problem(field)
    if problem:
        raise Refused(f"refused: {problem}")
    original = path.read_bytes()
    text = original.decode("utf-8").replace("\r\n", "\n")
    newline = "\r\n" if b"\r\n" in original else "\n"
    before = _checked(text, str(path), "refused: the file is not a valid route table as it is")
    old = next((r for r in before.routes if r.name == route), None)
    if old is None or old.shadow is None:
        raise Refused(f"refused: route {route!r} has no shadow block in {path}")
    if field in old.shadow.compare.ignore:
        return f"{route}: {field} is already ignored"
    yaml = round_trip_yaml(text)
    document = yaml.load(text)
    node = next(spec for spec in document["routes"] if spec.get("name") == route)
    untouched = dump(yaml, document)
    _ignore_list(node["shadow"]).append(field)
    edited = transplant(text, untouched, dump(yaml, document))
    after = _checked(edited, str(path), "refused: the edit would make the file invalid")
    compare = dataclasses.replace(old.shadow.compare, ignore=(*old.shadow.compare.ignore, field))
    expected = dataclasses.replace(old, shadow=dataclasses.replace(old.shadow, compare=compare))
    unplaced = [dataclasses.replace(r, line=0) for r in after.routes]
    wanted = [
        dataclasses.replace(expected if r.name == route else r, line=0) for r in before.routes
    ]
    if unplaced != wanted:
        raise Refused("refused: the edit would change more than compare.ignore (please report)")
    try:
        write_atomically(path, original, edited.replace("\n", newline).encode("utf-8"), str(path))
    except StoreError as exc:
        raise Refused(f"refused: {exc}") from exc
    return f"{route}: {field} added to shadow.compare.ignore"


def _ignore_list(shadow: CommentedMap) -> CommentedSeq:
    compare = shadow.get("compare")
    if compare is None:
        shadow["compare"] = compare = CommentedMap()
    ignore = compare.get("ignore")
    if ignore is None:
        compare["ignore"] = ignore = CommentedSeq()
        ignore.fa.set_flow_style()
    return ignore  # type: ignore[no-any-return]


def _checked(text: str, source: str, why: str) -> GatewayConfig:
    try:
        return load_text(text, source)
    except ConfigError as exc:
        raise Refused(f"{why}\n{exc}") from exc


def run_parity(args: argparse.Namespace) -> int:
    words: list[str] = args.words
    try:
        if words[0] == "ignore":
            if len(words) != 4:
                print(USAGE, file=sys.stderr)
                return 2
            print(add_ignore(Path(words[1]), words[2], words[3]))
            return 0
        if len(words) > 2:
            print(USAGE, file=sys.stderr)
            return 2
        route = words[1] if len(words) == 2 else None
        report = read_parity(words[0], route, args.window, args.admin_key)
    except (Refused, OSError, UnicodeDecodeError) as exc:
        print(f"gateway parity: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.output == "json" else render_text(report), end="")
    if args.output == "json":
        print()
    return 0


def add_parity_verb(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verb = verbs.add_parser(
        "parity", help="a running gateway's shadow parity per route; or: ignore FILE ROUTE PATH"
    )
    verb.add_argument("words", nargs="+", metavar="URL [ROUTE] | ignore FILE ROUTE PATH")
    verb.add_argument("--window", default=None, help="the window scored (default: the route's)")
    verb.add_argument("-o", "--output", choices=("text", "json"), default="text")
    add_admin_key(verb)
    verb.set_defaults(run=run_parity)
