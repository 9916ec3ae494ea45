"""Just enough of Grafana Alloy's configuration syntax to check config.alloy statically.

No Alloy binary installs here (Debian, PyPI and npm have none; its releases are downloads
from GitHub), so ``alloy fmt``/``alloy validate`` run only where the monitoring stack runs.
This reads blocks (``kind "label" { ... }``, nested) and attributes (``name = value``, the
value kept as its source text); comments and strings are honoured so braces inside them do
not count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_IDENT = re.compile(r"[A-Za-z_][\w.]*")


@dataclass
class Block:
    kind: str
    label: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def children(self, kind: str) -> list[Block]:
        return [b for b in self.blocks if b.kind == kind]


class AlloySyntaxError(ValueError):
    pass


def _strip_comments(text: str) -> str:
    out, i, in_string = [], 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\":
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise AlloySyntaxError("unterminated /* comment")
            i = end + 2
            continue
        else:
            out.append(ch)
        i += 1
    if in_string:
        raise AlloySyntaxError("unterminated string")
    return "".join(out)


def _value_end(text: str, i: int) -> int:
    """Index after an attribute value starting at ``i``: brackets balanced, up to a newline."""
    depth, in_string = 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            if depth == 0:
                return i
            depth -= 1
        elif ch == "\n" and depth == 0:
            return i
        i += 1
    if depth:
        raise AlloySyntaxError("unbalanced brackets in a value")
    return i


def _parse_body(text: str, i: int, parent: Block) -> int:
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text) or text[i] == "}":
            return i
        ident = _IDENT.match(text, i)
        if not ident:
            raise AlloySyntaxError(f"expected a name at {text[i:i + 30]!r}")
        name, i = ident.group(), ident.end()
        while text[i] in " \t":
            i += 1
        if text[i] == "=":
            end = _value_end(text, i + 1)
            if name in parent.attrs:  # Alloy refuses it; a dict would keep only the last
                raise AlloySyntaxError(f"{parent.kind}: attribute {name!r} set twice")
            parent.attrs[name] = text[i + 1 : end].strip()
            i = end
            continue
        label = None
        if text[i] == '"':
            end = text.index('"', i + 1)
            label, i = text[i + 1 : end], end + 1
            while text[i] in " \t":
                i += 1
        if text[i] != "{":
            raise AlloySyntaxError(f"block {name}: expected '{{' at {text[i:i + 30]!r}")
        block = Block(name, label)
        i = _parse_body(text, i + 1, block)
        if i >= len(text):
            raise AlloySyntaxError(f"block {name}: missing '}}'")
        parent.blocks.append(block)
        i += 1


def parse(text: str) -> list[Block]:
    """The top-level blocks of an Alloy configuration."""
    root = Block("<root>")
    clean = _strip_comments(text)
    end = _parse_body(clean, 0, root)
    if end < len(clean):
        raise AlloySyntaxError("unexpected '}' at top level")
    return root.blocks


def component(blocks: list[Block], kind: str, label: str) -> Block:
    for block in blocks:
        if (block.kind, block.label) == (kind, label):
            return block
    raise KeyError(f'{kind} "{label}" is not in the configuration')


def strings(value: str) -> list[str]:
    """The string literals of an attribute's source text."""
    return re.findall(r'"((?:[^"\\]|\\.)*)"', value)


def references(value: str) -> list[str]:
    """Component references (``loki.process.json.receiver``) in an attribute's source text."""
    return re.findall(r"\b((?:[a-z_]+\.)+[a-z_]+)\b", re.sub(r'"(?:[^"\\]|\\.)*"', "", value))


def object_fields(value: str) -> dict[str, str]:
    """``{ level = "level", time = "time" }`` -> {"level": "level", "time": "time"}."""
    return dict(re.findall(r'([A-Za-z_]\w*)\s*=\s*"([^"]*)"', value))
