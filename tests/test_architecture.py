"""The package's shape, checked: its imports form layers, with no loop and none running upward.

Every module of `gateway/` is read with `ast` (nothing is imported), and every import it makes,
at module level or inside a function, is an edge of the graph. A deferred import is still an
import: it may keep a cold start light, never close a loop.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gateway"

# The layers, lowest first; a module may import from its own layer or any lower one.
# A name is a module or a package (every module under it), the most specific one wins.
LAYERS: tuple[tuple[str, ...], ...] = (
    # the floor: ASGI types, the GatewayError family, raw headers
    ("gateway.asgi", "gateway.errors", "gateway.headers"),
    # the configuration: the frozen model and everything that reads, checks and stores it
    # (parity's `shadow:` block, its field paths and units are pure data read at load time:
    # the frozen Route holds a ShadowSpec, so they sit with the configuration)
    ("gateway.config", "gateway.parity.spec", "gateway.parity.paths", "gateway.parity.units"),
    # the pure core: matching, picking, normal forms, decisions, the ALB wire shape
    (
        "gateway.routing",
        "gateway.splitting",
        "gateway.normalize",
        "gateway.decision",
        "gateway.alb",
    ),
    # the mechanisms, side by side (fleet: their shared state on Redis; parity: comparing answers)
    (
        "gateway.admission",
        "gateway.protection",
        "gateway.upstreams",
        "gateway.telemetry",
        "gateway.fleet",
        "gateway.parity",
    ),
    # the table in use, and swapping it
    ("gateway.runtime", "gateway.reload"),
    # the corridor: normalize -> match -> admit -> pick -> forward -> respond
    ("gateway.forwarding", "gateway.proxy", "gateway.shadowing"),
    # the entry points and the commands
    (
        "gateway.app",
        "gateway.admin",
        "gateway.lambda_handler",
        "gateway.shadow_lambda",
        "gateway.cli",
        "gateway.local",
        "gateway.rollouts",
        # the migration: guarded moves between stages and their ledger, beside the rollouts
        # whose edit engine it drives and whose moves it records
        "gateway.migration",
    ),
)
STRANGERS = ("legacy_stub", "services")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(under: Path) -> dict[str, Path]:
    return {module_name(path): path for path in sorted(under.rglob("*.py"))}


def imported(path: Path, known: set[str]) -> Iterator[str]:
    """Every gateway module `path` imports, at any depth of its code."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            for alias in node.names:
                if f"{node.module}.{alias.name}" in known:
                    yield f"{node.module}.{alias.name}"


def graph(known: dict[str, Path]) -> dict[str, set[str]]:
    names = set(known)
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = {t for t in imported(path, names) if t in names and t != name}
        # importing gateway.x.y runs gateway.x's __init__ too, but that is a docstring only
        edges[name] = {t for t in targets if known[t].name != "__init__.py"}
    return edges


def layer_of(name: str) -> int:
    best: tuple[int, int] | None = None
    for index, layer in enumerate(LAYERS):
        for prefix in layer:
            if (name == prefix or name.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[1]
            ):
                best = (index, len(prefix))
    if best is None:
        raise AssertionError(f"{name} is in no layer: add it to LAYERS")
    return best[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One loop per strongly connected component (Tarjan), as a readable path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


GATEWAY = modules(PACKAGE)
EDGES = graph(GATEWAY)


def test_every_module_is_in_a_layer() -> None:
    # GIVEN every module of gateway/  WHEN each is placed  THEN none is left out
    for name in GATEWAY:
        if name != "gateway":
            layer_of(name)


def test_no_import_loop() -> None:
    # GIVEN the import graph, deferred imports included  THEN no module reaches itself
    assert cycles(EDGES) == []


def test_no_import_runs_upward() -> None:
    # GIVEN each import  THEN it goes to the importer's layer or a lower one
    upward = sorted(
        f"{source} (layer {layer_of(source)}) imports {target} (layer {layer_of(target)})"
        for source, targets in EDGES.items()
        if source != "gateway"
        for target in targets
        if target != "gateway" and layer_of(target) > layer_of(source)
    )
    assert upward == []


def test_config_model_imports_no_mechanism() -> None:
    # GIVEN the frozen model  THEN it imports nothing of the gateway but the shadow block's
    # frozen data (itself pure: parity.paths, and the one grammar of units in config.units)
    assert EDGES["gateway.config.model"] <= {"gateway.parity.spec"}
    assert EDGES["gateway.parity.spec"] <= {"gateway.parity.paths", "gateway.config.units"}
    assert "gateway.config.model" not in EDGES["gateway.config.units"]


def test_a_planted_loop_is_found() -> None:
    # GIVEN a graph with a loop through a deferred import  THEN the check sees it
    planted = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(planted) == [["a", "b", "c"]]


@pytest.mark.parametrize("stranger", STRANGERS, ids=STRANGERS)
def test_strangers_import_nothing_of_the_gateway(stranger: str) -> None:
    # GIVEN a backend the gateway fronts  THEN it knows nothing of the gateway
    reaching = sorted(
        f"{module_name(path)} imports {target}"
        for path in sorted((ROOT / stranger).rglob("*.py"))
        for target in imported(path, set())
        if target == "gateway" or target.startswith("gateway.")
    )
    assert reaching == []


def test_package_inits_hold_no_code() -> None:
    # GIVEN every package __init__  THEN it is empty or a docstring: no re-export facade
    for path in PACKAGE.rglob("__init__.py"):
        body = ast.parse(path.read_text()).body
        assert all(
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body
        ), path


def test_no_reexport_lists() -> None:
    # GIVEN every module  THEN none names an __all__ (a facade re-exporting other modules)
    for name, path in GATEWAY.items():
        assert "__all__" not in path.read_text(), name


def deferred_imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, the comments and imports above it) for each import inside a function."""
    lines = path.read_text().splitlines()
    for node in ast.walk(ast.parse("\n".join(lines), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    top = inner.lineno - 1
                    while top > 0 and lines[top - 1].strip().startswith(
                        ("#", "import ", "from ", ")")
                    ):
                        top -= 1
                    yield inner.lineno, "\n".join(lines[top : inner.lineno])


def test_every_deferred_import_says_why() -> None:
    # GIVEN each import inside a function  THEN a `# cold start:` comment above gives its reason
    unexplained = [
        f"{name}:{line}"
        for name, path in GATEWAY.items()
        for line, above in deferred_imports(path)
        if "# cold start:" not in above
    ]
    assert unexplained == []


def test_the_readme_module_table_names_the_folders() -> None:
    # GIVEN the README's module table  THEN it names every folder and module, and no other
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| module | holds |") : text.index("## routes.yaml reference")]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`([a-z_]+(?:\.py|/))`", row)}
    folders = {f"{path.parent.name}/" for path in PACKAGE.glob("*/__init__.py")}
    files = {path.name for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}
    assert named == folders | files
