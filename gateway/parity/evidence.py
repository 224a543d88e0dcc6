"""A few recent example pairs per differing path, redacted as the access log is.

Nothing secret reaches an example: sensitive headers are never shown, secret query values are
replaced, and in the answers' excerpts JWT-shaped strings and the values of secret-named JSON
keys are replaced too. Bounded: EXAMPLES per path, MAX_PATHS paths per route (least recently
seen dropped first).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.parity.compare import Difference

REDACTED = "REDACTED"
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
SENSITIVE_KEYS = frozenset(
    {
        "access_token",
        "id_token",
        "refresh_token",
        "token",
        "api_key",
        "apikey",
        "password",
        "secret",
        "client_secret",
        "signature",
    }
)
EXAMPLES = 3
MAX_PATHS = 128
EXCERPT_CHARS = 2048
REFRESH = 1.0

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_KEYED = re.compile(
    r'("(?:' + "|".join(sorted(SENSITIVE_KEYS)) + r')"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\]\s]+)',
    re.IGNORECASE,
)

_QUERY_PAIR = re.compile(
    r"(?<=[?&;])(" + "|".join(sorted(SENSITIVE_KEYS)) + r")=[^&;#\s\"']*", re.IGNORECASE
)
_NAMES = re.compile(r'\.([^.\[\]"\s]+)|\[("(?:[^"\\]|\\.)*")\]')


@dataclass(frozen=True, slots=True)
class Example:
    request: str
    """Method, path and redacted query: "GET /api/orders?token=REDACTED"."""
    primary: str
    candidate: str
    at: float


def redact_text(text: str) -> str:
    text = _KEYED.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text)
    text = _QUERY_PAIR.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return _JWT.sub(REDACTED, text)


def redact_query(raw: str) -> str:
    parts = []
    for part in raw.split("&"):
        key, sep, _ = part.partition("=")
        parts.append(f"{key}={REDACTED}" if sep and key.lower() in SENSITIVE_KEYS else part)
    return redact_text("&".join(parts))


def request_line(method: str, path: str, query: str = "") -> str:
    line = f"{method} {redact_text(path)}"
    return f"{line}?{redact_query(query)}" if query else line


def example_of(line: str, difference: Difference, now: float) -> Example:
    if _secret_path(difference.path):
        return Example(line, REDACTED, REDACTED, now)
    return Example(
        line, _cut(redact_text(difference.primary)), _cut(redact_text(difference.candidate)), now
    )


def _secret_path(path: str) -> bool:
    if path.startswith("header."):
        return path.removeprefix("header.") in SENSITIVE_HEADERS
    names = [plain or quoted.strip('"') for plain, quoted in _NAMES.findall(path)]
    return any(name.lower() in SENSITIVE_KEYS for name in names)


def _cut(text: str) -> str:
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


class EvidenceLog:
    def __init__(self, examples: int = EXAMPLES, max_paths: int = MAX_PATHS) -> None:
        self.examples = examples
        self.max_paths = max_paths
        self._lock = threading.Lock()
        self._routes: dict[str, OrderedDict[str, deque[Example]]] = {}

    def add(self, route: str, line: str, differences: Iterable[Difference], now: float) -> None:
        """Keep `differences` of one pair as examples; `line` from `request_line`.

        A path whose examples are all fresh (the newest under REFRESH seconds old) is passed
        over, so a path differing in every pair costs a dict lookup, not a redaction.
        """
        wanted = [d for d in differences if self._wants(route, d.path, now)]
        made = [(d.path, example_of(line, d, now)) for d in wanted]
        with self._lock:
            paths = self._routes.setdefault(route, OrderedDict())
            for path, example in made:
                if path not in paths:
                    paths[path] = deque(maxlen=self.examples)
                    while len(paths) > self.max_paths:
                        paths.popitem(last=False)
                paths.move_to_end(path)
                paths[path].append(example)

    def _wants(self, route: str, path: str, now: float) -> bool:
        with self._lock:
            paths = self._routes.get(route)
            kept = paths.get(path) if paths else None
            return not kept or len(kept) < self.examples or now - kept[-1].at >= REFRESH

    def latest(self, route: str, path: str) -> Example | None:
        found = self.recent(route, path)
        return found[-1] if found else None

    def recent(self, route: str, path: str) -> list[Example]:
        with self._lock:
            paths = self._routes.get(route)
            return list(paths[path]) if paths and path in paths else []

    def reset(self, route: str) -> None:
        with self._lock:
            self._routes.pop(route, None)
