"""The documented-deviation table: the one place where a difference between the gateway and
a third-party reference is allowed to stand.

The table lives in the README under `## Documented deviations`, one row per difference:
`| id | entry | what differs | why |`. A conformance test that finds a difference names it
by id and calls `require_documented(id, detail)`; an id missing from the table fails the
build, so an undocumented difference can never pass quietly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "## Documented deviations"
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|(.*)\|\s*$")


@dataclass(frozen=True, slots=True)
class Deviation:
    id: str
    entry: str
    what: str
    why: str


@cache
def documented() -> dict[str, Deviation]:
    """Every row of the README's deviation table, by id."""
    text = README.read_text(encoding="utf-8")
    start = text.find(HEADING)
    if start < 0:
        raise AssertionError(f"{README} has no {HEADING!r} section")
    rows: dict[str, Deviation] = {}
    for line in text[start + len(HEADING) :].splitlines():
        if line.startswith("## "):
            break
        match = _ROW.match(line.strip())
        if match is None:
            continue
        cells = [cell.strip() for cell in match.group(2).split("|")]
        if len(cells) != 3 or not all(cells):
            raise AssertionError(f"deviation row {match.group(1)!r} needs entry, what and why")
        rows[match.group(1)] = Deviation(match.group(1), *cells)
    return rows


def require_documented(deviation_id: str, detail: str) -> None:
    """Fail unless the difference `deviation_id` is in the README's table."""
    if deviation_id not in documented():
        pytest.fail(
            f"undocumented difference {deviation_id!r}: {detail}\n"
            f"fix it, or add a row for it under {HEADING!r} in the README"
        )
