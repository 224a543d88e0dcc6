"""The `gateway` command: serve the gateway; check, explain, edit and roll out a route table;
serve Lambda handlers locally."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from gateway.cli import local_lambda, serve
from gateway.cli.credentials import ENV_KEY, admin_headers
from gateway.cli.explain import EXPLAIN_PATH, parse_header, render, report
from gateway.cli.parity import add_parity_verb
from gateway.config.load import load_config
from gateway.config.model import ConfigError, GatewayConfig
from gateway.config.store import load_from, store_for
from gateway.migration.migrate import add_migrate_verb
from gateway.migration.progress import add_progress_verb
from gateway.migration.record import add_by, recorded
from gateway.rollouts.controller import add_rollout_verbs
from gateway.rollouts.edit import add_edit_verbs
from gateway.routing import RouteTable

DEFAULT_FILE = "routes.yaml"


def _load(path: str) -> GatewayConfig | None:
    """The table at `path`, or `s3://bucket/key` or `ssm:/name` as GATEWAY_CONFIG takes them:
    checked by the code the running gateway loads it with. None (problems printed) if bad."""
    try:
        if path.startswith(("s3://", "ssm:")):
            return load_from(store_for(path))
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load(args.file)
    if config is None:
        return 1
    print(f"{args.file}: ok ({len(config.targets)} targets, {len(config.routes)} routes)")
    return 0


def _parse_header(text: str) -> tuple[str, str]:
    try:
        return parse_header(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_explain(args: argparse.Namespace) -> int:
    words: list[str] = args.words
    if len(words) not in (2, 3) or (args.url and len(words) != 2):
        print(
            "usage: gateway explain [FILE | --url URL] METHOD PATH [-H 'Name: value' ...]",
            file=sys.stderr,
        )
        return 2
    method, target = words[-2], words[-1]
    if args.url:
        found = _ask(args.url, method, target, args.header, args.admin_key)
        if found is None:
            return 1
    else:
        config = _load(words[0] if len(words) == 3 else DEFAULT_FILE)
        if config is None:
            return 1
        found = report(RouteTable(config), method, target, args.header)
    for line in render(found):
        print(line)
    return 0 if found["outcome"] == "route" else 3


def _ask(
    url: str, method: str, target: str, headers: list[tuple[str, str]], key: str | None
) -> dict[str, Any] | None:
    """The running gateway's own report, from its admin API."""
    query = urlencode(
        [("method", method), ("path", target), *(("header", f"{n}: {v}") for n, v in headers)]
    )
    ask = urllib.request.Request(
        f"{url.rstrip('/')}{EXPLAIN_PATH}?{query}", headers=admin_headers(key)
    )
    try:
        with urllib.request.urlopen(ask, timeout=10) as answer:
            found: dict[str, Any] = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        print(f"{url}: the gateway answered {exc.code} to {EXPLAIN_PATH}", file=sys.stderr)
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"{url}: cannot ask the gateway: {exc}", file=sys.stderr)
        return None
    return found


def cmd_hash_key(_: argparse.Namespace) -> int:
    """Print sha256:<hex> for the key on stdin, for `auth: {api_keys: {keys: [...]}}`."""
    key = sys.stdin.readline().strip()
    if not key:
        print("give the key on standard input: gateway hash-key < key.txt", file=sys.stderr)
        return 2
    print("sha256:" + hashlib.sha256(key.encode()).hexdigest())
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="gateway", description=__doc__)
    top.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    verbs = top.add_subparsers(dest="verb", required=True)
    served = verbs.add_parser("serve", help="serve the gateway under uvicorn, set up as it needs")
    serve.add_arguments(served)
    served.set_defaults(run=serve.run)
    validate = verbs.add_parser(
        "validate",
        help="check a routes.yaml (a file, s3://bucket/key or ssm:/name); exit 1 listing problems",
    )
    validate.add_argument("file", nargs="?", default=DEFAULT_FILE)
    validate.set_defaults(run=cmd_validate)
    explain = verbs.add_parser("explain", help="which route and targets a request gets, and why")
    explain.add_argument("words", nargs="+", metavar="[FILE] METHOD PATH")
    explain.add_argument(
        "-H", "--header", action="append", default=[], type=_parse_header, metavar="'Name: value'"
    )
    explain.add_argument("--url", help="ask the gateway running there about its loaded table")
    explain.add_argument(
        "--admin-key", help=f"admin credential for --url (default: ${ENV_KEY})", default=None
    )
    explain.set_defaults(run=cmd_explain)
    add_edit_verbs(verbs)
    for kind in ("shift", "promote", "rollback"):  # each move they make goes to the ledger
        verb = verbs.choices[kind]
        add_by(verb)
        verb.set_defaults(run=recorded(verb.get_default("run"), kind))
    add_migrate_verb(verbs)
    add_progress_verb(verbs)
    add_rollout_verbs(verbs)
    add_parity_verb(verbs)
    hash_key = verbs.add_parser("hash-key", help="the hash of an API key (read from stdin)")
    hash_key.set_defaults(run=cmd_hash_key)
    local = verbs.add_parser("local-lambda", help="serve Lambda handlers on a local Invoke API")
    local_lambda.add_arguments(local)
    local.set_defaults(run=local_lambda.run)
    return top


def _version() -> str:
    # cold start: package metadata only for --version
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("strangler-gateway")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
