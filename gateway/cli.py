"""The `gateway` command: serve the gateway; check, explain, edit and roll out a route table;
serve Lambda handlers locally."""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence

from gateway import local_lambda, serve
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.edits import add_edit_verbs
from gateway.headers import HeaderView
from gateway.rollout import add_rollout_verbs
from gateway.routing import RouteTable

DEFAULT_FILE = "routes.yaml"


def _load(path: str) -> GatewayConfig | None:
    try:
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


def _parse_header(text: str) -> tuple[bytes, bytes]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write -H 'Name: value'")
    return name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")


def cmd_explain(args: argparse.Namespace) -> int:
    words: list[str] = args.words
    if len(words) not in (2, 3):
        print("usage: gateway explain [FILE] METHOD PATH [-H 'Name: value' ...]", file=sys.stderr)
        return 2
    path_file = words[0] if len(words) == 3 else DEFAULT_FILE
    method, path = words[-2].upper(), words[-1]
    config = _load(path_file)
    if config is None:
        return 1
    headers = HeaderView(args.header)
    verdicts = RouteTable(config).explain(method, path.split("?", 1)[0], headers)
    winner = next((v for v in verdicts if v.accepted), None)
    if winner is None:
        print(f"{method} {path}: no route matches (the gateway answers 404)")
    else:
        route = winner.route
        print(f"{method} {path} -> route {route.name!r} (line {route.line})")
        print(f"  why: {winner.reason}")
        for target, weight in route.split:
            print(f"  target {target}: {weight:g}%")
        if route.sticky:
            print(f"  sticky on {route.sticky}")
        if route.rewrite:
            print(f"  path rewritten: {route.path} -> {route.rewrite}")
    for verdict in verdicts:
        if verdict is not winner:
            print(f"  passed over {verdict.route.name!r} ({verdict.route.path}): {verdict.reason}")
    return 0 if winner else 3


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
    validate = verbs.add_parser("validate", help="check a routes.yaml; exit 1 listing problems")
    validate.add_argument("file", nargs="?", default=DEFAULT_FILE)
    validate.set_defaults(run=cmd_validate)
    explain = verbs.add_parser("explain", help="which route and targets a request gets, and why")
    explain.add_argument("words", nargs="+", metavar="[FILE] METHOD PATH")
    explain.add_argument(
        "-H", "--header", action="append", default=[], type=_parse_header, metavar="'Name: value'"
    )
    explain.set_defaults(run=cmd_explain)
    add_edit_verbs(verbs)
    add_rollout_verbs(verbs)
    hash_key = verbs.add_parser("hash-key", help="the hash of an API key (read from stdin)")
    hash_key.set_defaults(run=cmd_hash_key)
    local = verbs.add_parser("local-lambda", help="serve Lambda handlers on a local Invoke API")
    local_lambda.add_arguments(local)
    local.set_defaults(run=local_lambda.run)
    return top


def _version() -> str:
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
