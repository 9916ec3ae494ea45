"""A naming lint equivalent to ``promtool check metrics`` (client_golang's promlint).

Same rules, same wording, same order, so findings can be compared with promtool
one to one: help text present, base units, ``_total`` only and always on
counters, reserved ``_bucket``/``_count``/``_sum`` suffixes and ``le``/``quantile``
labels, no type in the name, no ``:``, snake_case names and labels, no
abbreviated units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

_CAMEL = re.compile(r"[a-z][A-Z]")
_TYPES_IN_NAME = ("counter", "gauge", "summary", "histogram", "gauge_histogram")
_BASE_UNITS = {
    "amperes": "amperes",
    "bytes": "bytes",
    "celsius": "celsius",
    "grams": "grams",
    "joules": "joules",
    "kelvin": "kelvin",
    "meters": "meters",
    "metres": "metres",
    "seconds": "seconds",
    "volts": "volts",
    "minutes": "seconds",
    "hours": "seconds",
    "days": "seconds",
    "weeks": "seconds",
    "kelvins": "kelvin",
    "fahrenheit": "celsius",
    "rankine": "celsius",
    "inches": "meters",
    "yards": "meters",
    "miles": "meters",
    "bits": "bytes",
    "calories": "joules",
    "pounds": "grams",
    "ounces": "grams",
}
_PREFIXES = (
    "pico",
    "nano",
    "micro",
    "milli",
    "centi",
    "deci",
    "deca",
    "hecto",
    "kilo",
    "kibi",
    "mega",
    "mibi",
    "giga",
    "gibi",
    "tera",
    "tebi",
    "peta",
    "pebi",
)
_ABBREVIATIONS = ("s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d")
# Python parser type names -> the text format's.
_UNTYPED = {"unknown", "untyped"}


@dataclass(frozen=True, order=True)
class Problem:
    metric: str
    text: str

    def __str__(self) -> str:
        return f"{self.metric} {self.text}"


@dataclass
class _Family:
    name: str
    type: str
    has_help: bool
    label_names: list[str]


def _unit_of(name: str) -> tuple[str, str] | None:
    parts = name.split("_")
    for unit, base in _BASE_UNITS.items():
        for prefix in (*_PREFIXES, ""):
            if prefix + unit in parts:
                return prefix + unit, base
    return None


def _families(text: str) -> list[_Family]:
    helps: set[str] = set()
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            parts = line.split(" ", 3)
            if len(parts) >= 3:
                helps.add(parts[2])
        elif line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                types[parts[2]] = parts[3]
    labels: dict[str, list[str]] = {}
    for family in text_string_to_metric_families(text):
        name = family.name
        if family.type == "counter" and f"{name}_total" in types:
            name = f"{name}_total"
        labels[name] = [k for sample in family.samples for k in sample.labels]
    names = list(dict.fromkeys([*types, *helps, *labels]))
    return [
        _Family(name, types.get(name, "untyped"), name in helps, labels.get(name, []))
        for name in names
    ]


def _lint_family(fam: _Family) -> list[Problem]:
    found: list[str] = []
    kind = fam.type
    name = fam.name
    lower = name.lower()
    if not fam.has_help:
        found.append("no help text")
    unit = _unit_of(name)
    if unit and unit[0] != unit[1]:
        found.append(f'use base unit "{unit[1]}" instead of "{unit[0]}"')
    untyped = kind in _UNTYPED
    total = name.endswith("_total")
    if kind == "counter" and not total:
        found.append('counter metrics should have "_total" suffix')
    elif not untyped and kind != "counter" and total:
        found.append('non-counter metrics should not have "_total" suffix')
    if not untyped:
        histogram, summary = kind == "histogram", kind == "summary"
        if not histogram and name.endswith("_bucket"):
            found.append('non-histogram metrics should not have "_bucket" suffix')
        for suffix in ("_count", "_sum"):
            if not histogram and not summary and name.endswith(suffix):
                found.append(
                    f'non-histogram and non-summary metrics should not have "{suffix}" suffix'
                )
        for label in fam.label_names:
            if not histogram and label == "le":
                found.append('non-histogram metrics should not have "le" label')
            if not summary and label == "quantile":
                found.append('non-summary metrics should not have "quantile" label')
    for typename in _TYPES_IN_NAME:
        if f"_{typename}_" in lower or lower.endswith(f"_{typename}"):
            found.append(f"metric name should not include type '{typename}'")
    if ":" in name:
        found.append("metric names should not contain ':'")
    if _CAMEL.search(name):
        found.append("metric names should be written in 'snake_case' not 'camelCase'")
    for label in fam.label_names:
        if _CAMEL.search(label):
            found.append("label names should be written in 'snake_case' not 'camelCase'")
    for abbreviation in _ABBREVIATIONS:
        if f"_{abbreviation}_" in lower or lower.endswith(f"_{abbreviation}"):
            found.append("metric names should not contain abbreviated units")
    return [Problem(name, text) for text in found]


def lint(text: str) -> list[Problem]:
    """Every naming problem in a text exposition, sorted like promtool sorts them."""
    problems = [p for fam in _families(text) for p in _lint_family(fam)]
    return sorted(problems)
