"""The ``model: "auto"`` heuristic: does a prompt look like a coding task?

The gateway routes ``auto`` requests to a code model or a chat model. The decision is a
cheap, deterministic score over the prompt text, not a model call, so it adds no latency
and is easy to reason about and test.

Scoring (see :func:`code_score`):

* each *strong* signal that occurs (a fenced code block, ``def name(``, a traceback, ...)
  adds :data:`STRONG_WEIGHT`, which equals :data:`CODE_THRESHOLD`, so one is enough;
* each *weak* concept that occurs (the words "bug", "python", "함수", ...) adds 1, so two
  different ones are needed. A concept counts once however often it appears, because
  repeating "python" five times is no more evidence than saying it once.

Matching is by whole word or exact code shape, never by substring: "gift" does not
contain the keyword "if", "classic" is not "class", "important" is not "import".
Korean is the exception: particles attach directly to nouns ("코드를", "함수가"), so a
Hangul keyword matches as a *prefix* of a word, i.e. it must start a word but may be
followed by more Hangul.

Prompts are untrusted input, so scoring must stay cheap: the code patterns are compiled
once, have no nested quantifiers and bound any lazy span (no catastrophic backtracking);
keywords are looked up in a set of the prompt's words instead of one regex per keyword;
and only the head and tail of very long prompts are scanned (:data:`MAX_SCAN_CHARS`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ModelKind(StrEnum):
    CHAT = "chat"
    CODE = "code"


# A prompt whose score reaches this is CODE.
CODE_THRESHOLD = 2
# Weight of one strong signal: by design a single one reaches the threshold.
STRONG_WEIGHT = CODE_THRESHOLD
# Weight of one weak concept: two different ones reach the threshold.
WEAK_WEIGHT = 1

# Roles whose text is scored. "developer" is the newer OpenAI name for "system".
_INSTRUCTION_ROLES = frozenset({"system", "developer"})

# Line-oriented patterns use [ \t] rather than \s so that a match never spans lines.
_M = re.MULTILINE
_STRONG_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Fenced code block (Markdown).
    re.compile(r"```"),
    # Python function definition.
    re.compile(r"\bdef[ \t]+[A-Za-z_]\w*[ \t]*\("),
    # Class definition: Python "class Name(" / "class Name:", also "class Name {".
    re.compile(r"\bclass[ \t]+[A-Za-z_]\w*[ \t]*[(:{]"),
    # JavaScript function declaration.
    re.compile(r"\bfunction[ \t]+[A-Za-z_$][\w$]*[ \t]*\("),
    # C/C++ include.
    re.compile(r"#include[ \t]*[<\"]"),
    # Python "import x" at line start, then end of line, "," (import x, y), ";" or " as ".
    re.compile(r"^[ \t]*import[ \t]+[A-Za-z_][\w.]*[ \t]*(?:$|[,;]|[ \t]as[ \t])", _M),
    # Python "from x import y" at line start.
    re.compile(r"^[ \t]*from[ \t]+[A-Za-z_.][\w.]*[ \t]+import[ \t]+[\w*(]", _M),
    # JavaScript module import: import x from "y" / import { x } from 'y'.
    re.compile(r"^[ \t]*import[ \t]+[^\n]{1,200}?[ \t]from[ \t]+[\"']", _M),
    # Arrow functions, PHP arrays, Rust match arms.
    re.compile(r"=>"),
    # Statement or block terminators at the end of a line (C family, JS, CSS, SQL).
    re.compile(r"[;{][ \t]*$", _M),
    # JavaScript logging.
    re.compile(r"\bconsole\.log[ \t]*\("),
    # SQL: upper-case SELECT ... FROM on one line ("select a file from the list" is prose).
    re.compile(r"\bSELECT\b[^\n;]{1,200}?\bFROM\b"),
    # SQL: "select * from" in any case; the star makes it unambiguous.
    re.compile(r"\bselect[ \t]+\*[ \t]+from\b", re.IGNORECASE),
    # Python traceback header.
    re.compile(r"Traceback \(most recent call last\)"),
    # Python stack frame: File "app.py", line 12
    re.compile(r"^[ \t]*File \"[^\"\n]+\", line \d", _M),
    # Java / JavaScript stack frame: at com.x.Y.run(Y.java:42) / at fn (/app/x.js:3:7)
    re.compile(r"^[ \t]+at[ \t]+[\w$.<>]+[ \t]*\([^()\n]*:\d", _M),
)

# Weak concepts: each counts at most once. Keywords are lists of words matched against
# the prompt's words (runs of \w characters, case-folded), so "gift" can never match "if".
# English words must match exactly; inflections that should count are listed explicitly
# rather than matched by prefix, which would pull in "codec", "scripture", "exceptional".
# A keyword of several words matches the same words adjacent in the prompt.
_WEAK_ENGLISH: dict[str, tuple[str, ...]] = {
    "code": ("code", "codes", "coding"),
    "function": ("function", "functions"),
    "bug": ("bug", "bugs"),
    "debug": ("debug", "debugging", "debugger"),
    "refactor": ("refactor", "refactoring"),
    "compile": ("compile", "compiler", "compiling"),
    "python": ("python",),
    "javascript": ("javascript",),
    "typescript": ("typescript",),
    "rust": ("rust",),
    "golang": ("golang",),
    "java": ("java",),
    "sql": ("sql",),
    "regex": ("regex", "regexes", "regexp"),
    "script": ("script", "scripts"),
    "exception": ("exception", "exceptions"),
    "stacktrace": ("stacktrace", "stack trace"),
    "unit test": ("unit test", "unit tests"),
    "git": ("git",),
    "dockerfile": ("dockerfile",),
}
# Korean keywords, by concept. Particles attach to the noun ("코드를", "함수가"), so the
# last word of a Korean keyword only has to *start* a word of the prompt.
_WEAK_KOREAN: dict[str, tuple[str, ...]] = {
    "code": ("코드",),
    "function": ("함수",),
    "bug": ("버그",),
    "debug": ("디버그", "디버깅"),
    "refactor": ("리팩터", "리팩토링"),
    "compile": ("컴파일",),
    "python": ("파이썬",),
    "javascript": ("자바스크립트",),
    "regex": ("정규식",),
    "script": ("스크립트",),
    "exception": ("예외",),
    "unit test": ("단위 테스트", "유닛 테스트"),
}
_WORD = re.compile(r"\w+")

# Scoring is linear, but a multi-megabyte prompt would still block the event loop for
# seconds. The head and the tail of a prompt are a sufficient sample for a routing hint.
MAX_SCAN_CHARS = 32_000


# How many leading characters of a word a Korean keyword can be compared with.
_KOREAN_STEM_LENGTHS = frozenset(
    len(keyword.split()[-1]) for keywords in _WEAK_KOREAN.values() for keyword in keywords
)


def _is_hangul(char: str) -> bool:
    return "\uac00" <= char <= "\ud7a3"


@dataclass(frozen=True)
class _Words:
    """The words of a text, indexed so that every keyword lookup is a set membership."""

    words: frozenset[str]
    pairs: frozenset[tuple[str, str]]
    # Leading characters of Hangul words (and pairs ending in one), for prefix matches.
    stems: frozenset[str]
    stem_pairs: frozenset[tuple[str, str]]

    @classmethod
    def of(cls, text: str) -> _Words:
        tokens = _WORD.findall(text.casefold())
        words = frozenset(tokens)
        pairs = frozenset(itertools.pairwise(tokens))
        return cls(
            words=words,
            pairs=pairs,
            stems=frozenset(w[:n] for w in words if _is_hangul(w[0]) for n in _KOREAN_STEM_LENGTHS),
            stem_pairs=frozenset(
                (a, b[:n]) for a, b in pairs if _is_hangul(b[0]) for n in _KOREAN_STEM_LENGTHS
            ),
        )

    def has_english(self, keyword: str) -> bool:
        parts = tuple(keyword.split())
        return parts[0] in self.words if len(parts) == 1 else parts in self.pairs

    def has_korean(self, keyword: str) -> bool:
        parts = tuple(keyword.split())
        return parts[0] in self.stems if len(parts) == 1 else parts in self.stem_pairs


def _sample(text: str) -> str:
    if len(text) <= MAX_SCAN_CHARS:
        return text
    half = MAX_SCAN_CHARS // 2
    # A newline at the seam stops line-anchored patterns from matching across it.
    return f"{text[:half]}\n{text[-half:]}"


def code_score(text: str) -> int:
    """How strongly ``text`` looks like a coding task; ``>= CODE_THRESHOLD`` means code.

    Texts longer than :data:`MAX_SCAN_CHARS` are scored on their head and tail only.
    """
    text = _sample(text)
    strong = sum(1 for pattern in _STRONG_PATTERNS if pattern.search(text))
    words = _Words.of(text)
    weak = sum(
        1
        for concept, english in _WEAK_ENGLISH.items()
        if any(words.has_english(keyword) for keyword in english)
        or any(words.has_korean(keyword) for keyword in _WEAK_KOREAN.get(concept, ()))
    )
    return strong * STRONG_WEIGHT + weak * WEAK_WEIGHT


def message_text(message: Mapping[str, Any]) -> str:
    """The text of one chat message; non-text content parts and odd shapes are ignored."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


def classify_prompt(messages: Sequence[Mapping[str, Any]]) -> ModelKind:
    """Pick CODE or CHAT for a chat-completions ``messages`` list.

    Scored text: every system/developer message plus the *last* user message. Earlier
    turns are ignored on purpose: a conversation that started with a code question and
    moved on to small talk should not stay pinned to the code model, and the cost stays
    bounded by one user turn. Assistant and tool messages are the model's own output.
    """
    instructions = []
    last_user = ""
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        role = message.get("role")
        if role in _INSTRUCTION_ROLES:
            instructions.append(message_text(message))
        elif role == "user":
            last_user = message_text(message)
    # Blank lines between the parts keep line-anchored patterns from joining messages.
    text = "\n\n".join([*instructions, last_user])
    return ModelKind.CODE if code_score(text) >= CODE_THRESHOLD else ModelKind.CHAT
