"""The route table's data model: frozen objects built once from routes.yaml.

`load_config` (and `parse_config` for text read from S3 or SSM) is the only way to build a
`GatewayConfig`; `gateway.config_loader` does every check and raises one `ConfigError`
listing all problems with file, line and field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_TIMEOUT = 30.0
RESERVED_PREFIX = "/_gateway"


@dataclass(frozen=True, slots=True)
class HttpTarget:
    name: str
    url: str
    timeout: float = DEFAULT_TIMEOUT
    kind: Literal["http"] = "http"


@dataclass(frozen=True, slots=True)
class LambdaTarget:
    name: str
    function: str
    timeout: float = DEFAULT_TIMEOUT
    region: str | None = None
    endpoint_url: str | None = None
    kind: Literal["lambda"] = "lambda"


Target = HttpTarget | LambdaTarget


@dataclass(frozen=True, slots=True)
class Sticky:
    source: Literal["header", "cookie"]
    name: str

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    path: str
    split: tuple[tuple[str, float], ...]
    methods: frozenset[str] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    sticky: Sticky | None = None
    rewrite: str | None = None
    line: int = 0

    @property
    def conditions(self) -> int:
        """How many method/header conditions the route adds to its path (the tie-breaker)."""
        return (1 if self.methods is not None else 0) + len(self.headers)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.split)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    targets: Mapping[str, Target]
    routes: tuple[Route, ...]
    source: str = "<memory>"
    version: str = ""
    raw: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    source: str
    line: int
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.where}: {self.message}"


class ConfigError(Exception):
    """Every problem found in one config file; the config is refused as a whole."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        count = len(problems)
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in config:\n{lines}")


def load_config(path: str) -> GatewayConfig:
    """Read and check a routes.yaml; raise `ConfigError` listing every problem."""
    from gateway.config_loader import load_file

    return load_file(path)


def parse_config(text: str, source: str) -> GatewayConfig:
    """Check routes.yaml text read from elsewhere (S3, SSM); `source` names it in errors."""
    from gateway.config_loader import load_text

    return load_text(text, source)
