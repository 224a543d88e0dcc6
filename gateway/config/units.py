"""Quantities as people write them in routes.yaml, parsed and printed in one place.

Durations: 250ms, 10s, 2m, 1h (or bare seconds). Sizes: 10MB, 64KiB, 512KB (or bare
bytes; KB = 10^3, KiB = 2^10). Rates: 100/s, 600/m, 10000/h. Shares: 50% or 0.5 (a
routes.yaml share); percents: 25 or 2.5% (a bare number is a percent, as the `shadow:`
block writes them). Every parser raises ValueError saying what is accepted.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"^\s*(\d+(?:\.\d+)?)\s*"
_DURATION_RE = re.compile(_NUMBER + r"(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_RE = re.compile(_NUMBER + r"(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 10**6, "gb": 10**9}
_SIZE_UNITS |= {"kib": 1024, "mib": 2**20, "gib": 2**30}
_RATE_RE = re.compile(_NUMBER + r"/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_RATE_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_RATE_UNITS |= {"h": 3600, "hour": 3600}
_PERCENT_RE = re.compile(_NUMBER + r"%?\s*$")


def parse_duration(value: object) -> float:
    """Seconds as a float; raise ValueError saying what is accepted."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (write 250ms, 10s or 2m)")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a duration (write 250ms, 10s or 2m)")
        return float(value)
    if isinstance(value, str):
        found = _DURATION_RE.match(value)
        if found:
            return float(found.group(1)) * _UNIT_SECONDS[found.group(2) or "s"]
    raise ValueError(f"{value!r} is not a duration (write 250ms, 10s or 2m)")


def parse_positive_duration(value: object) -> float:
    """A duration of more than zero seconds."""
    seconds = parse_duration(value)
    if not seconds > 0:
        raise ValueError(f"{value!r} is not a positive duration (write 250ms, 5s or 15m)")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def parse_size(value: object, least: int = 0) -> int:
    """Bytes, at least LEAST, from 1048576, "512KB", "10MB" or "64KiB"."""
    found = _SIZE_RE.match(str(value)) if not isinstance(value, bool) else None
    if found is not None:
        size = int(float(found.group(1)) * _SIZE_UNITS[(found.group(2) or "b").lower()])
        if size >= least:
            return size
    raise ValueError(f"{value!r} is not a size (write 10MB, 64KiB or bytes)")


def format_size(size: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 1024), ("MB", 10**6), ("KB", 1000)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"


def rate_parts(value: object) -> tuple[float, int]:
    """(count, period in seconds) from "100/s", "600/m" or "10000/h", as written."""
    found = _RATE_RE.match(str(value)) if not isinstance(value, bool) else None
    if found is None:
        raise ValueError(f"{value!r} is not a rate (write 100/s, 600/m or 10000/h)")
    return float(found.group(1)), _RATE_UNITS[found.group(2)]


def parse_rate(value: object) -> float:
    """Events per second from "100/s", "600/m" or "10000/h"; more than zero."""
    count, period = rate_parts(value)
    per_second = count / period
    if not 0 < per_second < math.inf:
        raise ValueError(f"{value!r}: a rate must be more than zero")
    return per_second


def format_rate(per_second: float) -> str:
    for unit, seconds in (("s", 1), ("m", 60), ("h", 3600)):
        count = per_second * seconds
        if count >= 1 and float(count).is_integer():
            return f"{count:g}/{unit}"
    return f"{per_second * 3600:g}/h"


def parse_share(value: object) -> float:
    """A share 0..1 written 50% or 0.5 (routes.yaml's shares)."""
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        number = -1.0
    if isinstance(value, bool) or not 0 <= number <= 1:
        raise ValueError(f"{value!r} is not a share (write 50% or 0.5)")
    return number


def parse_percent(value: object) -> float:
    """A share 0..1 from 25, 2.5 or "0.03%": a bare number is a percent."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value) if math.isfinite(value) else None
    elif isinstance(value, str) and (found := _PERCENT_RE.match(value)):
        number = float(found.group(1))
    if number is None or not 0 <= number <= 100:
        raise ValueError(f"{value!r} is not a percent between 0 and 100 (write 25 or 2.5%)")
    return number / 100


def format_percent(share: float) -> str:
    return f"{share * 100:g}%"
