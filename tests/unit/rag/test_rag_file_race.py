"""A file or folder swapped for a symbolic link between the check and the read.

The swap is made deterministically right after ``resolve_files`` has checked the paths
(the window a real race would use); the answer is a clear 4xx and nothing outside the
documents directory is read.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import services.rag.routes.documents as rag_documents
from services.core.errors import ApiError
from services.rag.indexer import read_documents
from tests.unit.rag.conftest import Rag

SECRET = "TOP SECRET outside the documents directory"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "a.md").write_text(SECRET)
    return folder


@pytest.fixture
def root(rag: Rag) -> Path:
    root = rag.settings.documents_root
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.md").write_text("inside text")
    return root


def swap_after_check(monkeypatch: pytest.MonkeyPatch, swap: Callable[[], None]) -> None:
    original = rag_documents.resolve_files

    def checked_then_swapped(*args, **kwargs):
        paths = original(*args, **kwargs)
        swap()
        return paths

    monkeypatch.setattr(rag_documents, "resolve_files", checked_then_swapped)


async def post(rag: Rag, *paths: str):
    return await rag.client.post(
        "/collections/race/files", json={"paths": list(paths)}, headers=rag.developer
    )


async def test_a_file_swapped_for_a_symlink_is_409_and_not_read(
    rag: Rag, root: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def swap() -> None:
        (root / "sub" / "a.md").unlink()
        (root / "sub" / "a.md").symlink_to(outside / "a.md")

    swap_after_check(monkeypatch, swap)
    response = await post(rag, "sub/a.md")
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "file_changed"
    assert "symbolic link" in error["message"]
    assert SECRET not in response.text


async def test_a_folder_swapped_for_a_symlink_is_403_and_not_read(
    rag: Rag, root: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def swap() -> None:
        shutil.rmtree(root / "sub")
        (root / "sub").symlink_to(outside, target_is_directory=True)

    swap_after_check(monkeypatch, swap)
    response = await post(rag, "sub")
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "path_outside_root"
    assert SECRET not in response.text
    listed = await rag.client.get("/collections/race/documents", headers=rag.viewer)
    assert listed.status_code == 404  # nothing was indexed


async def test_a_removed_file_is_409(rag: Rag, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    swap_after_check(monkeypatch, lambda: (root / "sub" / "a.md").unlink())
    removed = await post(rag, "sub/a.md")
    assert (removed.status_code, removed.json()["error"]["code"]) == (409, "file_changed")
    assert "was removed" in removed.json()["error"]["message"]


async def test_a_file_replaced_by_a_fifo_is_409_without_blocking(
    rag: Rag, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def to_fifo() -> None:
        (root / "sub" / "a.md").unlink()
        os.mkfifo(root / "sub" / "a.md")

    swap_after_check(monkeypatch, to_fifo)
    fifo = await post(rag, "sub/a.md")
    assert (fifo.status_code, fifo.json()["error"]["code"]) == (409, "file_changed")
    assert "no longer a regular file" in fifo.json()["error"]["message"]


def test_crlf_is_read_as_lf_like_before(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_bytes(b"one\r\ntwo\rthree\n")
    [document] = read_documents(tmp_path, [tmp_path / "w.txt"], 1000)
    assert document.text == "one\ntwo\nthree\n"


def test_a_file_that_grows_past_the_limit_is_413(tmp_path: Path) -> None:
    (tmp_path / "big.md").write_text("x" * 11)
    with pytest.raises(ApiError) as info:
        read_documents(tmp_path, [tmp_path / "big.md"], 10)
    assert info.value.status == 413
