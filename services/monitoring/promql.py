"""Find the metric selectors in a PromQL expression, for static checks of rules and panels.

Not a full PromQL parser: a tokenizer that is exact for what selectors look like (a metric
name, optionally followed by ``{label op "value", ...}``) and for the label lists of
``by``/``without``/``on``/``ignoring``/``group_left``/``group_right``, which is what a check
against the metrics contract needs. Ranges (``[5m]``, ``[$__rate_interval]``), numbers,
strings outside matchers and Grafana variables are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

AGGREGATIONS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    }
)
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}) | GROUPING

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<variable>\$\{[^}]*\}|\$\w+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[a-z]*)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<lbrace>\{)
  | (?P<rbrace>\})
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<other>==|!=|>=|<=|=~|!~|[-+*/%^<>=,@!])
    """,
    re.VERBOSE,
)
_MATCHER = re.compile(
    r"""\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*
        (?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(?:,|$)""",
    re.VERBOSE,
)


class PromQLSyntaxError(ValueError):
    """The expression cannot be tokenized."""


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True)
class Selector:
    metric: str | None
    matchers: tuple[Matcher, ...] = ()

    def labels(self) -> set[str]:
        return {m.label for m in self.matchers if m.label != "__name__"}


@dataclass
class Analysis:
    selectors: list[Selector] = field(default_factory=list)
    grouping_labels: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)

    @property
    def metrics(self) -> set[str]:
        return {s.metric for s in self.selectors if s.metric}


def _unquote(raw: str) -> str:
    if raw.startswith("`"):
        return raw[1:-1]
    escapes = {"n": "\n", "t": "\t", "r": "\r"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m[1], m[1]), raw[1:-1])


def parse_matchers(body: str) -> tuple[Matcher, ...]:
    """``label op "value", ...`` (the text between the braces of a selector)."""
    matchers = []
    position = 0
    body = body.strip()
    while position < len(body):
        found = _MATCHER.match(body, position)
        if not found:
            raise PromQLSyntaxError(f"cannot read label matchers at: {body[position:]!r}")
        matchers.append(Matcher(found["label"], found["op"], _unquote(found["value"])))
        position = found.end()
    return tuple(matchers)


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    while position < len(expr):
        found = _TOKEN.match(expr, position)
        if not found:
            raise PromQLSyntaxError(f"unexpected character at {position}: {expr[position:]!r}")
        kind = found.lastgroup or "other"
        if kind == "lbrace":
            end = _closing_brace(expr, found.end())
            tokens.append(("matchers", expr[found.end() : end]))
            position = end + 1
            continue
        if kind not in ("space", "comment"):
            tokens.append((kind, found.group()))
        position = found.end()
    return tokens


def _closing_brace(expr: str, start: int) -> int:
    quote = None
    index = start
    while index < len(expr):
        char = expr[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif char == "}":
            return index
        index += 1
    raise PromQLSyntaxError(f"unclosed '{{' in {expr!r}")


def analyze(expr: str) -> Analysis:
    """The selectors, grouping labels and functions of ``expr``."""
    tokens = _tokens(expr)
    result = Analysis()
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if kind == "name" and text.lower() in GROUPING:
            if following[0] == "lparen":
                index = _grouping(tokens, index + 2, result)
                continue
        elif kind == "name" and text.lower() in KEYWORDS:
            pass
        elif kind == "name" and (following[0] == "lparen" or text in AGGREGATIONS):
            result.functions.add(text)
        elif kind == "name":
            matchers: tuple[Matcher, ...] = ()
            if following[0] == "matchers":
                matchers = parse_matchers(following[1])
                index += 1
            result.selectors.append(Selector(text, matchers))
        elif kind == "matchers":
            matchers = parse_matchers(text)
            names = [m.value for m in matchers if m.label == "__name__" and m.op == "="]
            result.selectors.append(Selector(names[0] if names else None, matchers))
        index += 1
    return result


def _grouping(tokens: list[tuple[str, str]], index: int, result: Analysis) -> int:
    while index < len(tokens) and tokens[index][0] != "rparen":
        kind, text = tokens[index]
        if kind == "name":
            result.grouping_labels.add(text)
        elif kind not in ("other",):
            raise PromQLSyntaxError(f"unexpected {text!r} in a label list")
        index += 1
    return index + 1
