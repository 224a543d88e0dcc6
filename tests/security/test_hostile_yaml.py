"""Hostile routes.yaml files: `gateway validate` answers each in bounded time and memory with a
short refusal (exit 1), never a traceback, never a MemoryError, never a huge output."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.servers import ROOT, free_port, serve_process

MEMORY_LIMIT = 512 * 2**20
TIME_LIMIT_SECONDS = 30
MAX_OUTPUT = 20_000


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_limited(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A child interpreter in at most 512 MiB of address space and 30 s."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=TIME_LIMIT_SECONDS,
        preexec_fn=_limited,  # noqa: PLW1509 (no threads started in the parent for this)
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return run_limited(["-m", "gateway.cli.main", "validate", str(path)])


def laughs(depth: int, wrap: Callable[[str], str]) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, depth)]
    return "\n".join(lines) + "\n" + wrap(f"*l{depth - 1}") + "\n"


TARGET = "targets: {legacy: {url: 'http://127.0.0.1:1'}}\n"
ROUTE = "routes: [{name: r, path: /, target: legacy}]\n"
HOSTILE = {
    "laughs-as-targets": laughs(9, lambda bomb: f"targets: {bomb}"),
    "laughs-in-trusted-proxies": laughs(8, lambda b: f"{TARGET}{ROUTE}trusted_proxies: [{b}]"),
    "laughs-in-methods": laughs(
        8, lambda b: f"{TARGET}routes: [{{name: r, path: /, target: legacy, methods: {b}}}]"
    ),
    "laughs-as-routes": laughs(8, lambda b: f"{TARGET}routes: {b}"),
    "laughs-mapping": "\n".join(
        ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}"]
        + [f"m{i}: &m{i} {{{', '.join(f'k{j}: *m{i - 1}' for j in range(9))}}}"
           for i in range(1, 9)]
        + [f"{TARGET}routes: [{{name: r, path: /, target: legacy, headers: *m8}}]"]
    ),
    "deep-flow-sequence": f"targets: {'[' * 1000}{']' * 1000}\n",
    "deep-flow-mapping": "targets: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n",
    "deep-block-mapping": "targets:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(2000)),
    "nesting-past-64": TARGET + ROUTE + "x: " + "[" * 80 + "]" * 80 + "\n",
    "huge-scalar-in-a-bad-path":
        TARGET + f"routes: [{{name: r, path: {'a' * 3_000_000}, target: legacy}}]\n",
    "huge-unknown-key": TARGET + ROUTE + f"{'k' * 1_000_000}: 1\n",
    "huge-explicit-key": TARGET + ROUTE + f"? {'k' * 1_000_000}\n: 1\n",
    "over-the-size-cap": TARGET + ROUTE + "# " + "x" * (5 * 2**20) + "\n",
    "python-object-apply": "targets: !!python/object/apply:os.system ['touch PWNED']\n" + ROUTE,
    "python-name": "targets: {legacy: {url: !!python/name:os.system ''}}\n" + ROUTE,
    "unknown-tags":
        "targets: !foo {legacy: {url: 'http://x'}}\nroutes: [{name: r, path: !bar /}]\n",
    "binary-and-set": "targets: !!binary aGVsbG8=\nroutes: !!set {a, b}\n",
    "bad-utf8": "targets: \udcff\n",
    "many-problems":
        TARGET + "routes:\n" + "".join(f"  - {{name: r{i}, path: x}}\n" for i in range(5000)),
}  # fmt: skip


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_validate_refuses_hostile_yaml_briefly_in_bounded_memory(text: str, tmp_path: Path) -> None:
    # GIVEN a hostile routes.yaml
    path = tmp_path / "routes.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    # WHEN `gateway validate` reads it under a 512 MiB, 30 s bound
    answer = validate(path)
    output = answer.stdout + answer.stderr
    # THEN it exits 1 with a short list of problems: no traceback, no MemoryError, no code run
    assert answer.returncode == 1, output[-2000:]
    assert "Traceback" not in output and "MemoryError" not in output
    assert len(output) < MAX_OUTPUT, f"{len(output)} chars of output"
    assert output.startswith(("1 problem in config", *(f"{n} problems" for n in range(2, 102))))
    assert not (tmp_path / "PWNED").exists() and not (ROOT / "PWNED").exists()


def test_a_size_cap_can_be_raised_by_environment(tmp_path: Path) -> None:
    # GIVEN a valid table of about 1 MiB, mostly one comment
    path = tmp_path / "routes.yaml"
    path.write_text(TARGET + ROUTE + "# " + "x" * 2**20 + "\n")
    # WHEN the cap is lowered below it, then left at its default
    lowered = run_limited(["-m", "gateway.cli.main", "validate", str(path)],
                          env={"GATEWAY_CONFIG_MAX_BYTES": "65536"})  # fmt: skip
    default = validate(path)
    # THEN the lowered cap refuses it by name, and the default accepts it
    assert lowered.returncode == 1 and "GATEWAY_CONFIG_MAX_BYTES" in lowered.stderr
    assert default.returncode == 0, default.stderr


def test_fuzzed_hostile_yaml_is_refused_or_loaded_never_a_crash() -> None:
    # GIVEN a derandomized hypothesis run of hostile documents (aliases, tags, nesting, sizes)
    # WHEN a child interpreter under 512 MiB loads each
    answer = run_limited(["-m", "tests.security.hostile_fuzz", "80"])
    # THEN each was loaded or refused with a short ConfigError, nothing else escaped
    assert answer.returncode == 0, (answer.stdout + answer.stderr)[-3000:]


@pytest.mark.parametrize(
    ("name", "blamed"),
    [("laughs-in-trusted-proxies", ":11: trusted_proxies:"), ("nesting-past-64", ":3: x:")],
    ids=["aliases", "depth"],
)
def test_the_refusal_names_the_line_and_key_to_blame(
    name: str, blamed: str, tmp_path: Path
) -> None:
    # GIVEN a hostile table whose cost sits under one top-level key
    path = tmp_path / "routes.yaml"
    path.write_text(HOSTILE[name])
    # WHEN validate refuses it
    answer = validate(path)
    # THEN the problem names that key and its line
    assert answer.returncode == 1
    assert f"{path}{blamed}" in answer.stderr, answer.stderr


def test_a_running_gateway_refuses_an_alias_bomb_in_bounded_memory(tmp_path: Path) -> None:
    # GIVEN a gateway process serving a valid table, polling its file
    path = tmp_path / "routes.yaml"
    path.write_text(TARGET + ROUTE)
    port = free_port()
    argv = ["-m", "uvicorn", "gateway.app:app", "--port", str(port), "--no-proxy-headers"]
    env = {"GATEWAY_CONFIG": str(path), "GATEWAY_CONFIG_TTL": "0.1",
           "GATEWAY_CONFIG_SETTLE": "0.05", "GATEWAY_ACCESS_LOG": "off"}  # fmt: skip
    with serve_process(argv, port, env=env) as process:
        url = f"http://127.0.0.1:{port}/_gateway/routes"
        # WHEN an alias bomb is renamed over the file
        bomb = tmp_path / "bomb.yaml"
        bomb.write_text(HOSTILE["laughs-in-methods"])
        bomb.replace(path)
        deadline = time.monotonic() + 10
        routes = httpx.get(url).json()
        while routes["last_reload_error"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
            routes = httpx.get(url).json()
        peak_kib = int(_status(process.pid)["VmHWM"].split()[0])
    # THEN the reload was refused with a short reason, and the process stayed small
    assert routes["last_reload_error"] is not None
    assert "aliases expand" in routes["last_reload_error"]
    assert len(routes["last_reload_error"]) < 1000
    assert peak_kib < 300 * 1024, f"peak {peak_kib // 1024} MiB"


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)
