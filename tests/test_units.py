"""The one byte formatter: binary units labelled KiB/MiB/GiB, three significant digits."""

from __future__ import annotations

import pytest

from wizard.core.units import format_bytes


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
