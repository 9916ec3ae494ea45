"""The parts of a LogQL query the dashboards' checks need: the stream selector's matchers,
the parsers in the pipeline, and the fields later stages filter on.

Not a full LogQL grammar: a query using something this does not know (a metric query, a
``logfmt`` parser, ...) raises, so a new kind of query gets a parser here before it ships.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MATCHER = re.compile(r'\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
_LINE_FILTER = re.compile(r'\s*(\|=|\|~|!=|!~)\s*"((?:[^"\\]|\\.)*)"')
_PARSER = re.compile(r"\s*\|\s*json\b(?!\s*\w+\s*=)")
_LABEL_FILTER = re.compile(
    r'\s*\|\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=|>=|<=|>|<)\s*("(?:[^"\\]|\\.)*"|[\w.]+)'
)


class LogQLUnsupported(ValueError):
    pass


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True)
class LogQuery:
    selector: tuple[Matcher, ...]
    line_filters: tuple[tuple[str, str], ...]
    parses_json: bool
    field_filters: tuple[Matcher, ...]


def parse(query: str) -> LogQuery:
    text = query.strip()
    if not text.startswith("{"):
        raise LogQLUnsupported(f"{query!r}: only log queries with a stream selector")
    end = text.index("}")
    inner, i = text[1:end], 0
    selector = []
    while i < len(inner):
        m = _MATCHER.match(inner, i)
        if not m:
            raise LogQLUnsupported(f"{query!r}: cannot read the selector at {inner[i:]!r}")
        selector.append(Matcher(m[1], m[2], m[3]))
        i = m.end()
    rest, line_filters, fields, json = text[end + 1 :], [], [], False
    while rest.strip():
        if m := _LINE_FILTER.match(rest):
            line_filters.append((m[1], m[2]))
        elif m := _PARSER.match(rest):
            json = True
        elif m := _LABEL_FILTER.match(rest):
            fields.append(Matcher(m[1], m[2], m[3].strip('"')))
        else:
            raise LogQLUnsupported(f"{query!r}: cannot read the pipeline at {rest.strip()!r}")
        rest = rest[m.end() :]
    return LogQuery(tuple(selector), tuple(line_filters), json, tuple(fields))


@dataclass(frozen=True)
class LogSchema:
    """What reaches Loki: stream labels with the values they take, and the JSON fields of a
    line (for filters after ``| json``)."""

    labels: dict[str, frozenset[str]]
    fields: frozenset[str]


def _alternatives(matcher: Matcher) -> list[str]:
    if matcher.op in ("=", "!="):
        return [matcher.value]
    return matcher.value.split("|")


def problems(query: str, schema: LogSchema) -> list[str]:
    """Why ``query`` would select nothing (or not what it says) given ``schema``."""
    parsed = parse(query)
    found = []
    if not any(m.op in ("=", "=~") and m.value not in ("", ".*") for m in parsed.selector):
        found.append("the selector needs a label matcher that is not empty")
    for m in parsed.selector:
        if m.label not in schema.labels:
            found.append(f"label {m.label!r} is not a stream label ({sorted(schema.labels)})")
            continue
        for value in _alternatives(m):
            if value.startswith("$") or value == ".*":
                continue  # a dashboard variable, filled from the label's own values
            if not any(re.fullmatch(value, known) for known in schema.labels[m.label]):
                found.append(
                    f"{m.label}{m.op}{m.value!r}: {value!r} matches none of "
                    f"{sorted(schema.labels[m.label])}"
                )
    for m in parsed.field_filters:
        if not parsed.parses_json:
            found.append(f"filter on {m.label!r} without `| json`: only stream labels exist")
        elif m.label not in schema.fields:
            found.append(f"field {m.label!r} is not in the JSON log schema")
    return found
