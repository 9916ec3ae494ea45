"""Sentence-aware chunking: Korean and English, windows with overlap, nothing dropped."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.rag.chunking import chunk_text, estimate_tokens


def test_token_estimate_counts_latin_runs_and_hangul() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("test") == 1
    assert estimate_tokens("documentation") == 3
    assert estimate_tokens("문서를 색인") == 5
    assert estimate_tokens("a.b") == 3
    assert estimate_tokens("  \n\t") == 0


def test_english_sentences_are_not_cut_inside() -> None:
    text = "The first sentence is here. The second one follows! Is this the third? Yes."
    chunks = chunk_text(text, size=8, overlap=0)
    assert [c.text for c in chunks] == [
        "The first sentence is here.",
        "The second one follows!",
        "Is this the third? Yes.",
    ]


def test_korean_sentence_endings_split_even_without_a_space() -> None:
    text = "문서를 색인합니다.다음 문장입니다. 정말 그런가요?네 맞아요."
    chunks = chunk_text(text, size=9, overlap=0)
    assert [c.text for c in chunks] == [
        "문서를 색인합니다.",
        "다음 문장입니다.",
        "정말 그런가요?",
        "네 맞아요.",
    ]


def test_abbreviations_and_decimals_do_not_end_sentences() -> None:
    text = "Use a tool, e.g. the linter. Version 3.5 works."
    chunks = chunk_text(text, size=100, overlap=0)
    assert len(chunks) == 1
    units = chunk_text(text, size=11, overlap=0)
    assert units[0].text == "Use a tool, e.g. the linter."


def test_markdown_headings_start_new_chunks() -> None:
    text = "# Intro\nSome intro text.\n\n## Tests\nRun make test.\n"
    chunks = chunk_text(text, size=100, overlap=10)
    assert [c.text for c in chunks] == ["# Intro\nSome intro text.", "## Tests\nRun make test."]


def test_windows_overlap_by_whole_sentences() -> None:
    sentences = [f"Sentence {i} is here." for i in range(10)]  # 6 tokens each
    chunks = chunk_text(" ".join(sentences), size=18, overlap=6)
    assert chunks[0].text == " ".join(sentences[0:3])
    assert chunks[1].text == " ".join(sentences[2:5])
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_long_sentence_and_huge_word_are_split_not_dropped() -> None:
    word = "x" * 100  # 17 tokens as one Latin run
    text = f"{'many words ' * 20}end {word}"
    chunks = chunk_text(text, size=5, overlap=0)
    assert all(estimate_tokens(c.text) <= 5 for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")


def test_offsets_point_into_the_original_text() -> None:
    text = "Alpha beta.\nGamma delta.\n\n# H\nEpsilon."
    for chunk in chunk_text(text, size=3, overlap=1):
        assert text[chunk.start : chunk.end] == chunk.text


def test_empty_and_blank_text_give_no_chunks() -> None:
    assert chunk_text("") == []
    assert chunk_text("  \n\n ") == []


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_invalid_sizes_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match=r"size|overlap"):
        chunk_text("text", size=size, overlap=overlap)


_TEXT = st.lists(
    st.sampled_from([*"abc 가나다.?!\n#\t", "다.", "요?", "e.g. ", "## ", "word "]), max_size=120
).map("".join)


@given(text=_TEXT, size=st.integers(1, 40), overlap_ratio=st.floats(0, 0.9))
def test_every_character_is_kept_and_chunks_respect_the_size(
    text: str, size: int, overlap_ratio: float
) -> None:
    overlap = min(size - 1, int(size * overlap_ratio))
    chunks = chunk_text(text, size=size, overlap=overlap)
    covered = [False] * len(text)
    for position, chunk in enumerate(chunks):
        assert chunk.index == position
        assert chunk.text.strip()
        assert text[chunk.start : chunk.end] == chunk.text
        assert estimate_tokens(chunk.text) <= size
        for i in range(chunk.start, chunk.end):
            covered[i] = True
    lost = [text[i] for i, seen in enumerate(covered) if not seen and not text[i].isspace()]
    assert lost == []
    starts = [c.start for c in chunks]
    assert starts == sorted(starts)
    assert len(set(starts)) == len(starts)  # the window always moves forward


@given(st.text(max_size=200))
def test_any_unicode_text_chunks_without_error(text: str) -> None:
    for chunk in chunk_text(text, size=8, overlap=2):
        assert re.sub(r"\s", "", chunk.text)
