"""Indexing files under RAG_DOCUMENTS_DIR: .md/.txt, directories recurse, nothing outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.rag.conftest import Rag


@pytest.fixture
def docs_root(rag: Rag) -> Path:
    root = rag.settings.documents_root
    (root / "guides" / "deep").mkdir(parents=True)
    (root / "guides" / "intro.md").write_text("# Intro\nWelcome to the guide.\n")
    (root / "guides" / "deep" / "notes.txt").write_text("Deep notes about qdrant.\n")
    (root / "guides" / "image.png").write_bytes(b"\x89PNG")
    (root / "top.md").write_text("Top level file about backups.\n")
    return root


async def index_files(rag: Rag, *paths: str, collection: str = "default"):
    return await rag.client.post(
        f"/collections/{collection}/files", json={"paths": list(paths)}, headers=rag.developer
    )


async def test_directories_recurse_over_md_and_txt(rag: Rag, docs_root: Path) -> None:
    response = await index_files(rag, "guides", "top.md")
    assert response.status_code == 200, response.text
    ids = [d["id"] for d in response.json()["documents"]]
    assert ids == ["guides/deep/notes.txt", "guides/intro.md", "top.md"]
    listed = (await rag.client.get("/collections/default/documents", headers=rag.viewer)).json()
    intro = next(d for d in listed["documents"] if d["id"] == "guides/intro.md")
    assert intro["source"] == "guides/intro.md"
    assert intro["metadata"] == {"path": "guides/intro.md", "type": "md"}
    hit = (await rag.query("default", "qdrant notes")).json()["results"][0]
    assert hit["source"] == "guides/deep/notes.txt"
    again = await index_files(rag, "guides", "top.md", "guides/intro.md")  # overlap deduplicated
    assert again.json()["chunks_indexed"] == response.json()["chunks_indexed"]
    assert rag.app.state.store.count("default") == response.json()["chunks_indexed"]


@pytest.mark.parametrize("path", ["../outside.md", "/etc/passwd", "guides/../../x.md", "a\x00b"])
async def test_paths_outside_the_root_are_refused(rag: Rag, docs_root: Path, path: str) -> None:
    (docs_root.parent / "outside.md").write_text("secret")
    response = await index_files(rag, path)
    assert response.status_code == 403
    assert "outside the documents directory" in response.json()["error"]["message"]


async def test_symlink_out_of_the_root_is_refused(rag: Rag, docs_root: Path) -> None:
    secret = docs_root.parent / "secret.md"
    secret.write_text("secret text")
    os.symlink(secret, docs_root / "guides" / "link.md")
    response = await index_files(rag, "guides")
    assert response.status_code == 403
    assert "links outside" in response.json()["error"]["message"]
    assert (await index_files(rag, "guides/link.md")).status_code == 403


async def test_file_errors_are_explicit(rag: Rag, docs_root: Path) -> None:
    missing = await index_files(rag, "nope.md")
    assert missing.status_code == 404
    png = await index_files(rag, "guides/image.png")
    assert png.status_code == 422
    assert png.json()["error"]["code"] == "unsupported_file_type"
    (docs_root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    bad = await index_files(rag, "latin1.txt")
    assert bad.status_code == 422
    assert "not UTF-8" in bad.json()["error"]["message"]


async def test_file_limits(make_rag) -> None:
    async for rag in make_rag(max_document_bytes=20, max_documents=1):
        root = rag.settings.documents_root
        root.mkdir(parents=True)
        (root / "big.md").write_text("x" * 21)
        (root / "a.md").write_text("a")
        (root / "b.md").write_text("b")
        big = await index_files(rag, "big.md")
        assert big.status_code == 413
        assert "RAG_MAX_DOCUMENT_BYTES" in big.json()["error"]["message"]
        # More files than RAG_MAX_DOCUMENTS: indexed in batches, never a 413 for the count.
        many = await index_files(rag, "a.md", "b.md")
        assert many.status_code == 200, many.text
        assert [d["id"] for d in many.json()["documents"]] == ["a.md", "b.md"]


async def test_missing_documents_dir_says_how_to_fix(rag: Rag) -> None:
    response = await index_files(rag, "x.md")
    assert response.status_code == 404
    assert "RAG_DOCUMENTS_DIR" in response.json()["error"]["message"]
