"""Sentence-aware chunking for Korean and English text, with a sliding window.

Sizes are measured in *approximate tokens* (:func:`estimate_tokens`) so that one
setting means roughly the same amount of text in both languages: a run of Latin
letters/digits counts one token per started 6 characters ("test" = 1,
"documentation" = 3), every Hangul syllable or other CJK character counts 1, and
every other visible symbol counts 1. Whitespace counts nothing. This tracks
common subword tokenizers closely enough for budgeting; it is not exact.

How text is cut:

1. Markdown headings (``# ...``) start a new section; no chunk spans two sections,
   so a section such as "## Tests" stays together with its own text.
2. Sections are split into units: sentences (ending in ``.``, ``!``, ``?``, ``。``
   etc. followed by a space, also Korean endings such as ``다.``/``요.``/``까?`` that
   run straight into the next sentence) and lines.
3. A unit longer than the chunk size is split at whitespace, and a single word
   longer than the chunk size is split by characters: nothing is ever dropped.
4. Units are packed into windows of at most ``chunk_size`` tokens; the next window
   starts with the previous window's last units totalling at most ``overlap``.

Chunk texts are slices of the original text (formatting kept); ``start``/``end``
are character offsets into it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

_LATIN_RUN = re.compile(r"[A-Za-z0-9_]+")
_CJK = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7a3]")
_HEADING = re.compile(r"^#{1,6}\s", re.M)
# End of a sentence: terminal punctuation (and closing quotes/brackets) then whitespace,
# or a Korean sentence ending (Hangul + . ? !) running straight into the next sentence.
_SENTENCE_END = re.compile(
    r"(?:[.!?。！？…]+[\"')\]」』]*(?=\s))" r"|(?:(?<=[\uac00-\ud7a3])[.!?]+(?=[^\s\d.!?]))" r"|\n"
)
_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "mr", "mrs", "dr", "vs", "cf", "no", "fig"})
_LATIN_TOKEN_CHARS = 6


def estimate_tokens(text: str) -> int:
    """Approximate token count of ``text`` (see the module docstring)."""
    tokens = 0
    for match in _LATIN_RUN.finditer(text):
        tokens += math.ceil(len(match.group()) / _LATIN_TOKEN_CHARS)
    rest = _LATIN_RUN.sub(" ", text)
    for char in rest:
        if not char.isspace():
            tokens += 1
    return tokens


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int


def _sections(text: str) -> Iterator[tuple[int, int]]:
    starts = sorted({0, *(m.start() for m in _HEADING.finditer(text))})
    yield from zip(starts, [*starts[1:], len(text)], strict=True)


def _is_abbreviation(text: str, end: int) -> bool:
    word = re.search(r"([A-Za-z.]+)\.?$", text[max(0, end - 8) : end])
    return bool(word) and word.group(1).lower().rstrip(".") in _ABBREVIATIONS  # type: ignore[union-attr]


def _sentence_spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    cursor = start
    for match in _SENTENCE_END.finditer(text, start, end):
        cut = match.end()
        if match.group() != "\n" and _is_abbreviation(text, match.start() + 1):
            continue
        if text[cursor:cut].strip():
            yield cursor, cut
        cursor = cut
    if text[cursor:end].strip():
        yield cursor, end


def _split_long(text: str, start: int, end: int, limit: int) -> Iterator[_Unit]:
    """Cut one over-long span at whitespace, or by characters inside a huge word."""
    pieces = [(m.start(), m.end()) for m in re.finditer(r"\S+\s*", text[start:end])]
    piece_start = None
    piece_tokens = 0
    for rel_start, rel_end in pieces:
        word_start, word_end = start + rel_start, start + rel_end
        tokens = estimate_tokens(text[word_start:word_end])
        if tokens > limit:
            if piece_start is not None:
                yield _Unit(piece_start, word_start, piece_tokens)
                piece_start, piece_tokens = None, 0
            yield from _split_chars(text, word_start, word_end, limit)
            continue
        if piece_start is not None and piece_tokens + tokens > limit:
            yield _Unit(piece_start, word_start, piece_tokens)
            piece_start, piece_tokens = None, 0
        if piece_start is None:
            piece_start = word_start
        piece_tokens += tokens
    if piece_start is not None:
        yield _Unit(piece_start, end, piece_tokens)


def _split_chars(text: str, start: int, end: int, limit: int) -> Iterator[_Unit]:
    cursor = start
    while cursor < end:
        stop = cursor
        # Grow one character at a time: a Latin run's token count is not additive.
        while stop < end and estimate_tokens(text[cursor : stop + 1]) <= limit:
            stop += 1
        stop = max(stop, cursor + 1)
        yield _Unit(cursor, stop, estimate_tokens(text[cursor:stop]))
        cursor = stop


def _units(text: str, start: int, end: int, limit: int) -> list[_Unit]:
    units: list[_Unit] = []
    for span_start, span_end in _sentence_spans(text, start, end):
        tokens = estimate_tokens(text[span_start:span_end])
        if tokens > limit:
            units.extend(_split_long(text, span_start, span_end, limit))
        else:
            units.append(_Unit(span_start, span_end, tokens))
    return units


def _windows(units: list[_Unit], size: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Index ranges [first, last) of units, each within ``size`` tokens."""
    first = 0
    while first < len(units):
        total = 0
        last = first
        while last < len(units) and (last == first or total + units[last].tokens <= size):
            total += units[last].tokens
            last += 1
        yield first, last
        if last >= len(units):
            return
        # Step back over trailing units that fit in the overlap, but always move forward.
        back = last
        carried = 0
        while back - 1 > first and carried + units[back - 1].tokens <= overlap:
            back -= 1
            carried += units[back].tokens
        first = back


def chunk_text(text: str, *, size: int = 512, overlap: int = 100) -> list[Chunk]:
    """Split ``text`` into overlapping chunks of at most ``size`` approximate tokens."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1 token, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be >= 0 and smaller than size ({size}), got {overlap}")
    chunks: list[Chunk] = []
    for section_start, section_end in _sections(text):
        units = _units(text, section_start, section_end, size)
        for first, last in _windows(units, size, overlap):
            start, end = units[first].start, units[last - 1].end
            piece = text[start:end]
            stripped_start = start + (len(piece) - len(piece.lstrip()))
            stripped_end = end - (len(piece) - len(piece.rstrip()))
            chunks.append(
                Chunk(len(chunks), text[stripped_start:stripped_end], stripped_start, stripped_end)
            )
    return chunks
