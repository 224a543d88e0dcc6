"""Build the gateway's Lambda zip, and the NewServiceFunctionArns value its routes call for.

    .venv/bin/python infra/package.py [--out build/gateway.zip] [--routes routes.yaml]
                                      [--region R] [--account N] [--python python3.12]

The zip holds the runtime dependencies (pyproject.toml's `dependencies`) as wheels for the
template's runtime (CPython 3.12 on arm64: Graviton, Amazon Linux 2023), the `gateway`
package and the route table as `routes.yaml`: nothing else. Left out: boto3 and botocore,
which the Lambda runtime ships; the extras (uvicorn, the test tools, httpx). Before
zipping, every module the gateway imports is looked for:
one imported at module level and missing fails the build, a missing lazy one is named.
Every file gets the same timestamp, so the same inputs make the same zip and a redeploy of
an unchanged build changes nothing.

The ARNs are printed because the template takes them as a parameter, and a parameter's value
is literal: CloudFormation resolves no ${AWS::AccountId} inside it. A bare function name in
routes.yaml becomes arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME with the target's own
`region:` or --region, and --account; a qualifier (name:alias, ARN:alias) is dropped, since
the template grants each function with its versions and aliases, so a route table read from
S3 or SSM may move a route to another alias of the same function without a redeploy.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from gateway.config.load import load_config
from gateway.config.model import ConfigError, GatewayConfig, LambdaTarget

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "gateway"
ROUTES_NAME = "routes.yaml"  # where GATEWAY_CONFIG's default finds it, in /var/task

# The template's `Runtime: python3.12` and `Architectures: [arm64]`; python3.12 runs on
# Amazon Linux 2023 (glibc 2.34), so manylinux_2_28 wheels are as good as manylinux2014 ones.
PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
PROVIDED_BY_RUNTIME = frozenset({"boto3", "botocore"})

STRIPPED_DIRS = frozenset({"__pycache__", "tests"})
STRIPPED_SUFFIXES = frozenset({".pyc", ".pyi", ".pyx", ".pxd", ".c", ".h"})
# pip's bookkeeping; METADATA and entry_points.txt stay (importlib.metadata reads them).
STRIPPED_DIST_INFO = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
MB = 1024 * 1024
UNZIPPED_LIMIT = 250 * MB
ZIPPED_UPLOAD_LIMIT = 50 * MB
PLACEHOLDER_REGION = "REGION"
PLACEHOLDER_ACCOUNT = "ACCOUNT_ID"


class PackagingError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(str(args.routes))
    except (ConfigError, OSError) as exc:
        print(f"{args.routes}: {exc}", file=sys.stderr)
        return 1
    try:
        zipped, unzipped = build(args.routes, args.out, args.python)
    except PackagingError as exc:
        print(f"packaging failed: {exc}", file=sys.stderr)
        return 1
    limits = f"{ZIPPED_UPLOAD_LIMIT // MB} MB zipped upload, {UNZIPPED_LIMIT // MB} MB unzipped"
    print(f"{args.out}: {zipped / MB:.1f} MB zipped, {unzipped / MB:.1f} MB unzipped ({limits})")
    print(f"NewServiceFunctionArns={','.join(function_arns(config, args.region, args.account))}")
    for note in arn_notes(config, args.region, args.account):
        print(f"note: {note}", file=sys.stderr)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gateway.zip")
    parser.add_argument("--routes", type=Path, default=ROOT / ROUTES_NAME)
    parser.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        help="region of functions named without one (default: $AWS_REGION)",
    )
    parser.add_argument("--account", help="account of functions named without an ARN")
    parser.add_argument(
        "--python",
        default=f"python{PYTHON_VERSION}",
        help=f"a Python {PYTHON_VERSION} to precompile bytecode with; without one, each cold "
        "start compiles the sources in memory (/var/task is read-only)",
    )
    args = parser.parse_args(argv)
    args.region = args.region or PLACEHOLDER_REGION
    args.account = args.account or PLACEHOLDER_ACCOUNT
    return args


# --- The zip ------------------------------------------------------------------------------


def build(routes: Path, out: Path, python: str) -> tuple[int, int]:
    """Install, copy, strip, check, compile and zip; return the zipped and unzipped sizes."""
    with tempfile.TemporaryDirectory(prefix="gateway-package-") as tmp:
        site = Path(tmp) / "site"
        pip_install(site, requirements())
        shutil.copytree(ROOT / PACKAGE, site / PACKAGE)
        shutil.copyfile(routes, site / ROUTES_NAME)
        strip(site)
        required, lazy = missing_imports(ROOT / PACKAGE, site)
        if required:
            raise PackagingError(f"{PACKAGE} imports {', '.join(required)}: not in the zip")
        if lazy:
            print(
                f"note: {PACKAGE} imports {', '.join(lazy)} lazily, and the zip lacks it: "
                "if Lambda reaches the import, add the package to pyproject.toml's dependencies",
                file=sys.stderr,
            )
        precompile(site, python)
        unzipped = sum(path.stat().st_size for path in _files(site))
        if unzipped > UNZIPPED_LIMIT:
            raise PackagingError(f"{unzipped / MB:.1f} MB unzipped, over Lambda's 250 MB")
        write_zip(site, out)
    return out.stat().st_size, unzipped


def requirements() -> list[str]:
    """pyproject.toml's dependencies, with their version bounds: all of them, since the
    gateway imports every one (test clients and tools live in the dev extra)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs: list[str] = project["dependencies"]
    return list(specs)


def pip_install(site: Path, specs: list[str]) -> None:
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    command = [
        *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
        *("--no-compile", "--target", str(site), "--implementation", "cp"),
        *("--python-version", PYTHON_VERSION, "--only-binary=:all:", *platforms, *specs),
    ]
    if subprocess.run(command, check=False).returncode != 0:
        raise PackagingError("pip could not install the runtime dependencies (see above)")


def strip(site: Path) -> None:
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts pip wrote
    for path in sorted(site.rglob("*"), reverse=True):  # children before their parents
        if path.is_dir() and path.name in STRIPPED_DIRS:
            shutil.rmtree(path)
        elif path.is_file() and (
            path.suffix in STRIPPED_SUFFIXES
            or (path.parent.name.endswith(".dist-info") and path.name in STRIPPED_DIST_INFO)
        ):
            path.unlink()


def missing_imports(package: Path, site: Path) -> tuple[list[str], list[str]]:
    """Modules the package imports that neither the zip nor the runtime provides: those
    imported at module level (the cold start fails), and those imported lazily or under a
    `try` (maybe optional, such as an exporter only some deployments configure)."""
    provided = set(sys.stdlib_module_names) | PROVIDED_BY_RUNTIME | {package.name}
    provided |= {path.name.partition(".")[0] for path in site.iterdir()}
    required: set[str] = set()
    lazy: set[str] = set()
    for source in package.rglob("*.py"):
        for name, is_lazy in _imports(source):
            (lazy if is_lazy else required).add(name)
    return sorted(required - provided), sorted(lazy - required - provided)


def precompile(site: Path, python: str) -> None:
    """Bytecode for 3.12, hash-based so that the zip's fixed timestamps cannot stale it."""
    try:
        probe = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        probe = None
    if probe is None or probe.stdout.strip() != PYTHON_VERSION:
        print(
            f"note: no Python {PYTHON_VERSION} at {python!r}: the zip holds sources only "
            f"(give one with --python to save each cold start compiling them)",
            file=sys.stderr,
        )
        return
    # -s/-p: tracebacks name /var/task/..., where Lambda unpacks the zip, not this temp dir.
    command = [python, "-m", "compileall", "-q", "-j", "0", "-s", str(site), "-p", "/var/task"]
    command += ["--invalidation-mode", "unchecked-hash", str(site)]
    if subprocess.run(command, check=False).returncode != 0:
        raise PackagingError(f"{python} -m compileall failed (see above)")


def write_zip(site: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in _files(site):
            info = zipfile.ZipInfo(path.relative_to(site).as_posix(), date_time=ZIP_EPOCH)
            info.external_attr = (0o755 if path.stat().st_mode & 0o111 else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)


# --- NewServiceFunctionArns ---------------------------------------------------------------


def function_arns(config: GatewayConfig, region: str, account: str) -> list[str]:
    """The unqualified ARN of every function the route table invokes in AWS, sorted."""
    return sorted(
        {
            function_arn(target.function, target.region or region, account)
            for target in _aws_lambda_targets(config)
        }
    )


def function_arn(function: str, region: str, account: str) -> str:
    """`name`, `name:qualifier` or a function ARN (qualified or not) -> the function's ARN."""
    if function.startswith("arn:"):
        # arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
        return ":".join(function.split(":")[:7])
    name = function.partition(":")[0]
    return f"arn:{partition(region)}:lambda:{region}:{account}:function:{name}"


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def arn_notes(config: GatewayConfig, region: str, account: str) -> Iterator[str]:
    for target in config.targets.values():
        if isinstance(target, LambdaTarget) and target.endpoint_url:
            yield f"target {target.name!r} calls {target.endpoint_url}, not AWS: no ARN for it"
    named = [t for t in _aws_lambda_targets(config) if not t.function.startswith("arn:")]
    if named and account == PLACEHOLDER_ACCOUNT:
        yield f"no --account: replace {PLACEHOLDER_ACCOUNT} in the ARNs above"
    if any(target.region is None for target in named) and region == PLACEHOLDER_REGION:
        yield f"no --region or AWS_REGION: replace {PLACEHOLDER_REGION} in the ARNs above"


# --- Helpers ------------------------------------------------------------------------------


def _aws_lambda_targets(config: GatewayConfig) -> Iterator[LambdaTarget]:
    for target in config.targets.values():
        if isinstance(target, LambdaTarget) and not target.endpoint_url:
            yield target


def _imports(source: Path) -> Iterator[tuple[str, bool]]:
    """(top-level name, lazy) of each absolute import in a module, but `if TYPE_CHECKING:`
    ones; lazy means inside a function or a `try`, so not necessarily run at import."""
    deferred = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.Try)
    stack: list[tuple[ast.AST, bool]] = [(ast.parse(source.read_text(), str(source)), False)]
    while stack:
        node, lazy = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend((child, lazy) for child in node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from ((alias.name.partition(".")[0], lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0], lazy
        lazy = lazy or isinstance(node, deferred)
        stack.extend((child, lazy) for child in ast.iter_child_nodes(node))


def _files(root: Path) -> Iterable[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


if __name__ == "__main__":
    sys.exit(main())
