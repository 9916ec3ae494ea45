"""``ai-suite rag index`` splits a folder into requests the service accepts."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from services.cli.rag import LocalFile, batches, scan


def files(sizes: list[int]) -> list[LocalFile]:
    return [LocalFile(f"f{i}", Path(f"f{i}"), "0" * 64, size) for i, size in enumerate(sizes)]


@given(st.lists(st.integers(0, 5000), max_size=60), st.integers(1, 10), st.integers(1, 8000))
def test_batches_keep_order_and_limits(sizes: list[int], count: int, max_bytes: int) -> None:
    found = list(batches(files(sizes), count, max_bytes))
    assert [f for batch in found for f in batch] == files(sizes)  # all, in order, once
    for batch in found:
        assert 1 <= len(batch) <= count
        # Over the byte budget only when one file alone is larger than it.
        assert sum(f.size for f in batch) <= max_bytes or len(batch) == 1


def test_scan_takes_markdown_and_text_and_hashes_content(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_text("same")
    (tmp_path / "b.TXT").write_text("same")
    (tmp_path / "c.png").write_bytes(b"\x89PNG")
    (tmp_path / "link.md").symlink_to(tmp_path / "sub" / "a.md")
    found = scan(tmp_path)
    assert [f.id for f in found] == ["b.TXT", "sub/a.md"]  # no image, no symbolic link
    assert found[0].sha256 == found[1].sha256  # by content, not by name
