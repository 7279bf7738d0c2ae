"""Parsing of human units in the configuration: durations, byte sizes, rates."""

from __future__ import annotations

import re
from dataclasses import dataclass

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(ms|s|m|h)\s*$")


def parse_duration(value: object) -> float:
    """Seconds from 5, 2.5, "250ms", "60s", "10m", "1h30m", "14d"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m or 14d, not a boolean")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration like 30s, 5m or 14d")
    text = value.strip()
    if not text:
        raise ValueError("expected a duration like 30s, 5m or 14d, got an empty string")
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"invalid duration {value!r}: use a number and a unit (ms, s, m, h, d, w)")
    return total


def format_duration(seconds: float) -> str:
    for unit in ("w", "d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds * 1000:g}ms"


def parse_size(value: object) -> int:
    """Bytes from 1048576, "1MiB", "512 KiB", "2MB"."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 1MiB, not a boolean")
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or not (match := _SIZE.match(value)):
        raise ValueError(f"invalid size {value!r}: use bytes or a unit (KiB, MiB, GiB, KB, MB, GB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` requests per `period` seconds."""

    count: float
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period


def parse_rate(value: object) -> Rate:
    """Rate from "50/s", "3000/m" or a bare number (per second)."""
    if isinstance(value, Rate):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a rate like 50/s, not a boolean")
    if isinstance(value, int | float):
        rate = Rate(float(value), 1.0)
    elif isinstance(value, str) and (match := _RATE.match(value)):
        rate = Rate(float(match.group(1)), _DURATION_UNITS[match.group(2)])
    else:
        raise ValueError(f"invalid rate {value!r}: use a count per unit, like 50/s or 3000/m")
    if rate.count <= 0:
        raise ValueError("a rate must be positive")
    return rate
