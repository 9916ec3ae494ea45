"""Prometheus duration strings (``30s``, ``5m``, ``1h30m``) to seconds and back."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration; ValueError for anything else."""
    text = str(text).strip()
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"not a Prometheus duration: {text!r} (expected e.g. 30s, 5m, 1h30m)")
    return float(sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text)))


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for ``seconds`` (whole milliseconds)."""
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {seconds}")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit in ("h", "m", "s"):
        size = int(_UNITS[unit] * 1000)
        if millis >= size:
            parts.append(f"{millis // size}{unit}")
            millis %= size
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)
