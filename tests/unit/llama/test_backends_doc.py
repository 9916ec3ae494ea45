"""docs/backends.md backs each llama.cpp claim with a test: the tests it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_every_test_the_backends_page_names_exists() -> None:
    doc = (ROOT / "docs" / "backends.md").read_text()
    named = set(re.findall(r"`(test_\w+)`", doc))
    source = "".join(
        (ROOT / "tests" / path).read_text()
        for path in ("e2e/test_llama_e2e.py", "integration/llama/test_llama_server_behaviour.py")
    )
    defined = set(re.findall(r"^def (test_\w+)\(", source, flags=re.M))
    assert len(named) >= 10
    assert named - defined == set()
