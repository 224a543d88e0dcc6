"""Durations, sizes, rates and percents: one grammar each, parsed and printed in config/units."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.config.units import (
    format_duration,
    format_percent,
    format_rate,
    format_size,
    parse_duration,
    parse_percent,
    parse_positive_duration,
    parse_rate,
    parse_share,
    parse_size,
)

ROUND_TRIPS: dict[str, tuple[Callable[[object], float], Callable[[float], str], str]] = {
    "duration-ms": (parse_duration, format_duration, "250ms"),
    "duration-m": (parse_duration, format_duration, "2m"),
    "size-mib": (parse_size, lambda n: format_size(int(n)), "64KiB"),
    "size-mb": (parse_size, lambda n: format_size(int(n)), "10MB"),
    "rate-s": (parse_rate, format_rate, "100/s"),
    "rate-m": (parse_rate, format_rate, "10/m"),
    "rate-h": (parse_rate, format_rate, "7/h"),
    "percent": (parse_percent, format_percent, "2.5%"),
}


@pytest.mark.parametrize("case", list(ROUND_TRIPS), ids=list(ROUND_TRIPS))
def test_what_is_printed_parses_back_to_the_same_quantity(case: str) -> None:
    # GIVEN a quantity as written in routes.yaml
    parse, show, written = ROUND_TRIPS[case]
    # WHEN it is parsed and printed
    printed = show(parse(written))
    # THEN it prints as written, and that parses to the same value
    assert printed == written
    assert parse(printed) == parse(written)


REFUSED: dict[str, tuple[Callable[[object], float], object, str]] = {
    "duration-word": (parse_duration, "soon", "is not a duration"),
    "duration-zero": (parse_positive_duration, "0s", "not a positive duration"),
    "size-unit": (parse_size, "10 parsecs", "is not a size"),
    "size-bool": (parse_size, True, "is not a size"),
    "rate-no-unit": (parse_rate, "100", "is not a rate"),
    "rate-zero": (parse_rate, "0/s", "more than zero"),
    "share-over-one": (parse_share, 1.5, "is not a share"),
    "percent-over-100": (parse_percent, "150%", "between 0 and 100"),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_a_bad_quantity_is_refused_saying_what_is_accepted(case: str) -> None:
    # GIVEN / WHEN a quantity no grammar accepts
    parse, value, reason = REFUSED[case]
    with pytest.raises(ValueError, match=reason) as caught:
        parse(value)
    # THEN the message quotes it
    assert repr(value) in str(caught.value)


def test_a_share_and_a_percent_read_a_bare_number_differently() -> None:
    # GIVEN / WHEN a bare number as a routes.yaml share and as a shadow: percent
    # THEN 0.5 is half as a share, and half a percent as a percent
    assert (parse_share(0.5), parse_share("50%")) == (0.5, 0.5)
    assert (parse_percent(0.5), parse_percent("50%"), parse_percent(50)) == (0.005, 0.5, 0.5)
