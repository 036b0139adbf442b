"""Sizes for people: binary units (KiB, MiB, ...), as df -h and pg_size_pretty count them."""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
STEP = 1024


def format_bytes(n: float) -> str:
    """'0 B', '512 B', '1.5 KiB', '4.8 MiB', '398 MiB', '1.2 GiB'.

    Whole bytes below 1 KiB; above, one decimal under 100 and none from 100 on, so a size
    never shows more than three or four digits. The unit is the largest in which the
    rounded value is at least 1, so 1023.97 KiB reads '1.0 MiB', not '1024.0 KiB'.
    """
    sign = "-" if n < 0 else ""
    size = abs(float(n))
    if round(size) < STEP:
        return f"{sign}{size:.0f} B"
    unit = 0
    while unit < len(UNITS) - 1 and _rounded(size) >= STEP:
        size /= STEP
        unit += 1
    return f"{sign}{_digits(size)} {UNITS[unit]}"


def _rounded(size: float) -> float:
    return round(size) if round(size, 1) >= 100 else round(size, 1)


def _digits(size: float) -> str:
    return f"{size:.0f}" if round(size, 1) >= 100 else f"{size:.1f}"
