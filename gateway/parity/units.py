"""The few quantities a `shadow:` block is written in: percents, sizes, durations.

Local on purpose: the package imports nothing of the gateway that the re-layout may move.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"\s*(\d+(?:\.\d+)?)\s*"
_PERCENT = re.compile(_NUMBER + r"%?\s*$")
_SIZE = re.compile(_NUMBER + r"(b|kb|kib|mb|mib)?\s*$", re.IGNORECASE)
_DURATION = re.compile(_NUMBER + r"(ms|s|m|h)?\s*$")
_SIZE_BYTES = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1_000_000, "mib": 1 << 20}
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _number(value: object, pattern: re.Pattern[str]) -> tuple[float, str] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return (float(value), "") if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        found = pattern.match(value)
        if found:
            unit = found.group(2) if pattern.groups > 1 else ""
            return float(found.group(1)), (unit or "").lower()
    return None


def parse_percent(value: object) -> float:
    """A share 0..1 from 25, 2.5 or "0.03%"; ValueError otherwise."""
    read = _number(value, _PERCENT)
    if read is None or read[0] > 100:
        raise ValueError(f"{value!r} is not a percent between 0 and 100 (write 25 or 2.5%)")
    return read[0] / 100


def parse_size(value: object) -> int:
    """Bytes from 1048576, "512KB" or "1MB" (MB = 10^6, MiB = 2^20)."""
    read = _number(value, _SIZE)
    if read is None or read[0] < 1:
        raise ValueError(f"{value!r} is not a size (write 1MB, 256KB or a number of bytes)")
    return int(read[0] * _SIZE_BYTES[read[1] or "b"])


def parse_duration(value: object) -> float:
    """Seconds from 5, "250ms", "5s" or "15m"."""
    read = _number(value, _DURATION)
    if read is None or read[0] <= 0:
        raise ValueError(f"{value!r} is not a duration (write 250ms, 5s or 15m)")
    return read[0] * _SECONDS[read[1] or "s"]
