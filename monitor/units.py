"""Human-friendly durations (``90s``, ``10m``, ``1h30m``), sizes (``15MiB``) and rates (``20/h``)."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2, "mi": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3,
}


def parse_duration(value: object) -> timedelta:
    """Parse ``90s``, ``10m``, ``2h``, ``1d``, ``1h30m``; a bare number is seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: expected text such as 90s, 10m, 2h or 1d")
    text = value.strip()
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if text[pos : m.start()].strip():
            break
        total += float(m.group(1)) * _SECONDS[m.group(2).lower()]
        pos = m.end()
    if not text or pos == 0 or text[pos:].strip():
        raise ValueError(f"invalid duration {value!r}: use a number and a unit (ms, s, m, h, d, w), "
                         "e.g. 90s, 10m, 2h, 1d")
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_size(value: object) -> int:
    """Parse ``15MiB``, ``512KiB``, ``10MB`` or a bare number of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"invalid size {value!r}: use a number and a unit, e.g. 512KiB, 15MiB, 1GB")
    return int(float(m.group(1)) * _SIZE_FACTORS[(m.group(2) or "").lower()])


def format_size(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:g}{unit}"
    return f"{size}B"


def parse_rate(value: object) -> tuple[int, timedelta]:
    """Parse ``20/h`` or ``100/1d`` into (count, period)."""
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"invalid rate {value!r}: use N/period, e.g. 20/h or 100/1d")
    count_text, period_text = value.split("/", 1)
    period_text = period_text.strip()
    if period_text and period_text[0].isalpha():
        period_text = "1" + period_text
    try:
        count = int(count_text)
        period = parse_duration(period_text)
    except ValueError:
        raise ValueError(f"invalid rate {value!r}: use N/period, e.g. 20/h or 100/1d") from None
    if count < 1 or period.total_seconds() <= 0:
        raise ValueError(f"invalid rate {value!r}: count and period must be positive")
    return count, period
