"""Sizes, rates and durations for people: binary units (KiB, MiB, ...), as df -h counts them."""

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


def format_rate(bytes_per_s: float) -> str:
    """A throughput in the same binary units: '8.1 MiB/s'."""
    return f"{format_bytes(bytes_per_s)}/s"


def format_duration(seconds: float) -> str:
    """'0 s', '45 s', '2 min 05 s', '1 h 02 min': whole seconds, as a progress line reads."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
