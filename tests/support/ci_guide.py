"""The command blocks of docs/ops/CI_CD_GUIDE.md and their marks (tests/unit/repo and
tests/integration/repo check them)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "ops" / "CI_CD_GUIDE.md"
MARKED_BLOCK = re.compile(r"(?:<!-- (?P<mark>[^>]+) -->\n)?```bash\n(?P<body>.*?)```", re.S)
MARKS = {"runs here", "runs here, cheap", "needs a GitHub runner"}


def guide_blocks() -> list[tuple[str | None, str]]:
    """(mark or None, body) of every ```bash block, in order."""
    return [(m["mark"], m["body"]) for m in MARKED_BLOCK.finditer(GUIDE.read_text())]
