"""The byte, rate and duration formatters: binary units labelled KiB/MiB/GiB, three digits."""

from __future__ import annotations

import pytest

from wizard.core.units import format_bytes, format_duration, format_rate


@pytest.mark.parametrize(("n", "text"), [
    (0, "0 B"),
    (1, "1 B"),
    (512, "512 B"),
    (1023, "1023 B"),
    (1024, "1.0 KiB"),
    (1536, "1.5 KiB"),
    (10 * 1024, "10.0 KiB"),
    (99.94 * 1024, "99.9 KiB"),
    (99.96 * 1024, "100 KiB"),  # rounds to 100.0: shown without a decimal
    (5_033_164, "4.8 MiB"),
    (398 * 2**20, "398 MiB"),
    (int(1.2 * 2**30), "1.2 GiB"),
    (3 * 2**40, "3.0 TiB"),
    (2**50, "1.0 PiB"),
    (2**60, "1024 PiB"),  # no larger unit: the number grows
])
def test_sizes(n: float, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize(("n", "text"), [
    (1023.6, "1.0 KiB"),  # would print '1024 B'
    (1023.97 * 1024, "1.0 MiB"),  # would print '1024 KiB'
    (2**30 - 1, "1.0 GiB"),
])
def test_a_value_that_rounds_up_to_the_next_unit_is_shown_in_it(n: float, text: str) -> None:
    assert format_bytes(n) == text


def test_fractions_and_negatives() -> None:
    assert format_bytes(0.4) == "0 B"  # progress estimates are floats
    assert format_bytes(2.5 * 2**20) == "2.5 MiB"
    assert format_bytes(-1536) == "-1.5 KiB"


def test_no_decimal_labels() -> None:
    for n in (10**3, 10**6, 10**9, 10**12):
        assert format_bytes(n).split()[1] in ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def test_rates_use_the_same_binary_units() -> None:
    assert format_rate(8.1 * 2**20) == "8.1 MiB/s"
    assert format_rate(0) == "0 B/s"


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (0.4, "0 s"), (44.6, "45 s"), (59.4, "59 s"), (60, "1 min 00 s"),
    (125, "2 min 05 s"), (3599, "59 min 59 s"), (3600, "1 h 00 min"), (3720, "1 h 02 min"),
    (-3, "0 s"),
])
def test_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
