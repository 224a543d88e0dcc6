"""Diffy's rule: a path differs for real only when it differs clearly more than the primary
differs from itself.

Noise is learned from a share of requests sent twice to the primary, so its count is scaled to
the number of pairs compared before the rule is applied (Diffy sends every request three times
and compares equal numbers; here 5% is enough to learn which fields are timestamps and ids).
"""

from __future__ import annotations


def expected_noise(noise: int, noise_pairs: int, compared: int) -> float:
    """How many of `compared` pairs the primary alone would differ in at this path."""
    if noise_pairs == 0:
        return 0.0
    return noise * compared / noise_pairs


def is_real(raw: float, noise: float, compared: int, relative: float, absolute: float) -> bool:
    """raw > noise, |raw - noise| / (raw + noise) > relative and |raw - noise| / compared >
    absolute, the thresholds as shares (0.20 and 0.0003 for Diffy's 20% and 0.03%)."""
    if raw <= noise or compared == 0:
        return False
    gap = raw - noise
    return gap / (raw + noise) > relative and gap / compared > absolute
