"""The rollout's `state:` block as people read it, and as it was written before.

Written: `step` 1-based, as the controller's messages print it ("step 3"), and `started_at`
as an ISO 8601 UTC time (`2026-12-02T05:00:00Z`); before the rollout starts, no `started_at`.
Read: that, or the older form, a 0-based `step` with `started_at` as epoch seconds (a number),
so tables written before keep working. The form is told by `started_at`: a number is the old.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(round(epoch), UTC).isoformat().replace("+00:00", "Z")


def written(step: int, started_at: float) -> dict[str, object]:
    """The `step` and `started_at` values to write for a 0-based step."""
    values: dict[str, object] = {"step": step + 1}
    if started_at > 0:
        values["started_at"] = iso(started_at)
    return values


def read(step: object, started_at: object) -> tuple[int | None, float | None]:
    """(0-based step, epoch seconds) from the block's values; None for a value not understood."""
    if isinstance(started_at, bool):
        return None, None
    if isinstance(started_at, int | float):  # the older form: epoch seconds, 0-based step
        base, when = 0, float(started_at)
    elif started_at is None:
        base, when = 1, 0.0
    else:
        try:
            parsed = datetime.fromisoformat(str(started_at).replace("Z", "+00:00"))
        except ValueError:
            return None, None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        base, when = 1, parsed.timestamp()
    if step is None:
        return 0, when
    if isinstance(step, bool) or not isinstance(step, int) or step < base:
        # a hand-written `step: 0` without a time is the first step either way
        return (0, when) if step == 0 and started_at is None else (None, when)
    return step - base, when
