"""The model "auto" heuristic: hand-picked prompts plus properties over generated text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.selection import (
    CODE_THRESHOLD,
    MAX_SCAN_CHARS,
    ModelKind,
    classify_prompt,
    code_score,
)

# Words that contain a keyword or code token as a substring but are ordinary prose.
DECOYS = [
    "gift",
    "shift",
    "classic",
    "classify",
    "classroom",
    "default",
    "defaults",
    "define",
    "definitely",
    "important",
    "imported",
    "importance",
    "selection",
    "fromage",
    "codec",
    "encoded",
    "malfunction",
    "debut",
    "bugle",
    "humbug",
    "trusty",
    "rusted",
    "javanese",
    "scripture",
    "manuscript",
    "exceptional",
    "digit",
    "legit",
    "sqlite3x",
    "regexed",
    "pythonic",
    "compiled",
]
PROSE = [
    "the",
    "a",
    "weather",
    "is",
    "lovely",
    "today",
    "please",
    "tell",
    "me",
    "about",
    "history",
    "of",
    "Rome",
    "and",
    "why",
    "cats",
    "sleep",
    "so",
    "much",
    "recipe",
    "for",
    "dinner",
    "오늘",
    "날씨",
    "어때",
    "맛있는",
    "저녁",
    "추천해줘",
]


def user(text: str) -> list[dict[str, object]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize(
    "text",
    [
        "```\nprint('hi')\n```",
        "def parse(line):\n    return line.split()",
        "class Parser(Base):\n    pass",
        "class Config:\n    debug = True",
        "function add(a, b) { return a + b }",
        "#include <stdio.h>",
        "import os",
        "import numpy as np",
        "from collections import Counter",
        "import React from 'react'",
        "const double = (x) => x * 2",
        "int x = 3;",
        "if (ready) {",
        "console.log(value)",
        "SELECT id, name FROM users WHERE age > 3",
        "why does select * from orders hang?",
        "Traceback (most recent call last):\n  oops",
        '  File "app.py", line 12, in <module>',
        "    at com.example.Service.run(Service.java:42)",
        "Can you fix this bug in my python script?",
        "How do I write a regex for emails in javascript?",
        "My unit tests fail after the refactor",
        "이 코드를 리팩토링 해줘",
        "함수에서 예외가 발생해요",
        "디버깅 좀 도와줘. 버그가 있어",
        "파이썬 스크립트를 짜줘",
        "단위 테스트를 작성하는 코드가 필요해",
    ],
)
def test_code_prompts_are_code(text: str) -> None:
    assert code_score(text) >= CODE_THRESHOLD
    assert classify_prompt(user(text)) is ModelKind.CODE


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "Write me a poem about the sea.",
        "What a classic gift! It is important to define the default.",
        "Select a file from the list and import it into your notes",
        "Import duties were high that year.",
        "The function of the heart is to pump blood.",
        "I found a bug in my garden.",
        "오늘 날씨 어때?",
        "맛있는 저녁 메뉴 추천해줘",
        "예약을 확인해 주세요",
        "",
    ],
)
def test_prose_is_chat(text: str) -> None:
    assert code_score(text) < CODE_THRESHOLD
    assert classify_prompt(user(text)) is ModelKind.CHAT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gift", 0),
        ("classic classify", 0),
        ("default define", 0),
        ("important imported", 0),
        ("bug", 1),
        ("bug bug bugs", 1),  # one concept counts once
        ("bug python", 2),
        ("Python", 1),  # case-insensitive
        ("코드를", 1),  # Hangul keyword + particle
        ("바코드", 0),  # Hangul keyword not at a word start
        ("unit test", 1),
        ("unit", 0),
    ],
)
def test_score_values(text: str, expected: int) -> None:
    assert code_score(text) == expected


def test_one_strong_signal_is_enough_and_weak_needs_two() -> None:
    assert code_score("=>") == CODE_THRESHOLD
    assert code_score("compiler") < CODE_THRESHOLD
    assert code_score("compiler rust") >= CODE_THRESHOLD


def test_content_parts_and_odd_shapes() -> None:
    messages = [
        {"role": "system"},
        {"role": "assistant", "content": "```python\nprint(1)\n```"},  # not scored
        {"role": "user", "content": None},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:..."}},
                {"type": "text", "text": "def main():"},
                {"type": "text"},
                "not a part",
            ],
        },
    ]
    assert classify_prompt(messages) is ModelKind.CODE
    assert classify_prompt([{"role": "user", "content": 42}]) is ModelKind.CHAT
    assert classify_prompt([]) is ModelKind.CHAT


def test_only_last_user_message_and_system_are_scored() -> None:
    earlier_code = [
        {"role": "user", "content": "```\nx = 1\n```"},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "Thanks! Now tell me a joke."},
    ]
    assert classify_prompt(earlier_code) is ModelKind.CHAT
    system_code = [
        {"role": "system", "content": "You are a python expert."},
        {"role": "user", "content": "Why is my script slow?"},
    ]
    assert classify_prompt(system_code) is ModelKind.CODE


def test_messages_are_not_joined_into_one_line() -> None:
    # "import" ending the system prompt must not pair with the user's words.
    messages = [
        {"role": "system", "content": "Everything is important to\nimport"},
        {"role": "user", "content": "duties from abroad"},
    ]
    assert classify_prompt(messages) is ModelKind.CHAT


def test_long_prompt_is_sampled_at_head_and_tail() -> None:
    filler = "lorem ipsum " * (MAX_SCAN_CHARS // 6)
    assert code_score("```\n" + filler) >= CODE_THRESHOLD
    assert code_score(filler + "\n```") >= CODE_THRESHOLD
    assert code_score(filler + "``` in the middle " + filler) == 0


@given(st.lists(st.sampled_from(PROSE + DECOYS), max_size=40))
def test_prose_of_non_code_words_is_chat(words: list[str]) -> None:
    text = " ".join(words)
    assert code_score(text) == 0
    assert classify_prompt(user(text)) is ModelKind.CHAT


@given(st.text(max_size=300))
def test_fenced_block_is_code(text: str) -> None:
    assert classify_prompt(user(f"```\n{text}\n```")) is ModelKind.CODE


@given(st.text(max_size=300), st.lists(st.sampled_from(DECOYS), min_size=1, max_size=10))
def test_substring_decoys_never_raise_the_score(text: str, decoys: list[str]) -> None:
    assert code_score(f"{text}\n{' '.join(decoys)}") == code_score(text)


@given(st.text(max_size=500))
def test_total_and_deterministic_on_any_text(text: str) -> None:
    score = code_score(text)
    assert score >= 0
    assert code_score(text) == score
    assert classify_prompt(user(text)) == classify_prompt(user(text))


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
                "content": st.one_of(
                    st.none(),
                    st.text(max_size=50),
                    st.lists(
                        st.fixed_dictionaries(
                            {"type": st.sampled_from(["text", "image_url"]), "text": st.text()}
                        ),
                        max_size=3,
                    ),
                ),
            }
        ),
        max_size=5,
    )
)
def test_classify_never_raises(messages: list[dict[str, object]]) -> None:
    assert classify_prompt(messages) in (ModelKind.CHAT, ModelKind.CODE)
