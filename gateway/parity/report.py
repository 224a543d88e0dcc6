"""`GET /_gateway/parity[?route=NAME]` as JSON, and the same read at a glance on a terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.parity.counters import Snapshot
from gateway.parity.evidence import EvidenceLog
from gateway.parity.recorder import Recorder
from gateway.parity.score import Score, score
from gateway.parity.spec import CompareSpec

MAX_ROWS = 50
OUTCOMES = ("compared", "no_answer", "skipped", "dropped", "mismatched")


def route_report(
    route: str,
    snapshot: Snapshot,
    spec: CompareSpec,
    evidence: EvidenceLog,
    window: float | None = None,
) -> dict[str, Any]:
    """One route's entry: the window's score and paths, the since-reset score, the counts."""
    seconds = spec.window if window is None else window
    now = score(snapshot.window, spec)
    total = score(snapshot.total, spec)
    return {
        "route": route,
        "window": _duration(seconds),
        "score": _rounded(now.score),
        "reason": now.reason,
        "since_reset": {
            "score": _rounded(total.score),
            "reason": total.reason,
            "compared": total.judged,
        },
        "counts": {name: snapshot.window.outcomes[name] for name in OUTCOMES},
        "real_mismatched": now.mismatched,
        "noise_samples": snapshot.window.noise_pairs,
        "paths": _paths(route, now, evidence),
    }


def parity_report(
    recorder: Recorder,
    specs: Mapping[str, CompareSpec],
    now: float,
    route: str | None = None,
    window: float | None = None,
) -> dict[str, Any]:
    """The body of `GET /_gateway/parity[?route=NAME]`: every route with a shadow, or one."""
    names = [route] if route is not None else sorted(specs)
    entries = []
    for name in names:
        spec = specs.get(name)
        if spec is None:
            continue
        seconds = spec.window if window is None else window
        snapshot = recorder.store.snapshot(name, seconds, now)
        entries.append(route_report(name, snapshot, spec, recorder.evidence, seconds))
    return {"routes": entries}


def _paths(route: str, result: Score, evidence: EvidenceLog) -> list[dict[str, Any]]:
    rows = []
    for row in result.rows[:MAX_ROWS]:
        example = evidence.latest(route, row.path)
        rows.append(
            {
                "path": row.path,
                "kind": row.kind,
                "raw": row.raw,
                "noise": round(row.noise, 1),
                "verdict": row.verdict,
                "example": None
                if example is None
                else {
                    "request": example.request,
                    "primary": example.primary,
                    "candidate": example.candidate,
                },
            }
        )
    return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g}m" if seconds % 60 == 0 else f"{seconds:g}s"


def render_text(report: Mapping[str, Any], example_chars: int = 60) -> str:
    """Per route: a score line, the counts, then the paths, real ones first."""
    blocks = [_render_route(entry, example_chars) for entry in report["routes"]]
    return "\n\n".join(blocks) + "\n" if blocks else "no route has a shadow\n"


def _render_route(entry: Mapping[str, Any], width: int) -> str:
    lines = [_score_line(entry), _counts_line(entry)]
    table = [("PATH", "KIND", "RAW", "NOISE", "VERDICT", "EXAMPLE (primary → candidate)")]
    for row in entry["paths"]:
        cells = (row["path"], row["kind"], str(row["raw"]), f"{row['noise']:g}", row["verdict"])
        table.append((*cells, _example(row["example"], width)))
    if len(table) > 1:
        lines.extend("  " + line for line in _aligned(table))
    return "\n".join(lines)


def _score_line(entry: Mapping[str, Any]) -> str:
    line = f"{entry['route']}  parity {_percent(entry['score'])} over {entry['window']}"
    if entry["reason"]:
        line += f" ({entry['reason']})"
    total = entry["since_reset"]
    return line + f"; since reset {_percent(total['score'])} over {total['compared']} pairs"


def _counts_line(entry: Mapping[str, Any]) -> str:
    counts = entry["counts"]
    shown = "  ".join(f"{name} {counts[name]}" for name in OUTCOMES[:4])
    return (
        f"  {shown}  differing {counts['mismatched']} (real {entry['real_mismatched']})"
        f"  noise samples {entry['noise_samples']}"
    )


def _percent(score: float | None) -> str:
    return "—" if score is None else f"{score:.2f}%"


def _example(example: Mapping[str, str] | None, width: int) -> str:
    if example is None:
        return ""
    text = f"{_short(example['primary'], width // 2)} → {_short(example['candidate'], width // 2)}"
    return f"{text}  [{_short(example['request'], width)}]"


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _aligned(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    right = {2, 3}
    out = []
    for row in rows:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=False))
        ]
        out.append("  ".join([*cells, row[-1]]).rstrip())
    return out
