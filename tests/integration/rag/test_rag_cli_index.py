"""``ai-suite rag index PATH``: a folder larger than one request's limit, through a real
gateway and RAG service on sockets; re-runs skip unchanged files, index changed ones
and delete the documents of removed ones."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.cli import run
from tests.support.tiny_pdf import tiny_pdf

__all__ = ["run"]  # the in-process CLI fixture

NOTES = 130  # over RAG_MAX_DOCUMENTS (100): never one request
FILES = NOTES + 2  # and an HTML page and a PDF


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    for i in range(NOTES):
        sub = root / ("ko" if i % 2 else "en")
        sub.mkdir(parents=True, exist_ok=True)
        text = (
            f"# 메모 {i}\n\n김치찌개 {i}번째 기록입니다." if i % 2 else f"# Note {i}\n\nTopic {i}."
        )
        (sub / f"note-{i:03}.md").write_text(text)
    (root / "ignored.png").write_bytes(b"\x89PNG not indexed")
    (root / "web").mkdir()
    (root / "web" / "page.html").write_text("<h1>Keys</h1><p>Rotate them.</p><script>x</script>")
    (root / "web" / "paper.pdf").write_bytes(tiny_pdf("Quarterly credential rotation"))
    return root


@pytest.fixture
def gateway(start_rag, start_gateway, keys) -> tuple[str, str]:
    rag = start_rag()  # the hash backend: this tests the command, not the model
    return start_gateway(rag_url=rag), keys.create("dev", "developer")


def index(run, folder: Path, gateway: tuple[str, str]) -> tuple[dict[str, int], str]:
    url, key = gateway
    result = run(
        "rag", "index", str(folder), "--collection", "notes", "--gateway-url", url, "--key", key
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def listed(gateway: tuple[str, str]) -> dict[str, dict[str, object]]:
    url, key = gateway
    response = httpx.get(
        f"{url}/v1/rag/collections/notes/documents", headers={"Authorization": f"Bearer {key}"}
    )
    return {d["id"]: d["metadata"] for d in response.json()["documents"]}


def test_index_skip_change_and_remove(run, folder: Path, gateway: tuple[str, str]) -> None:
    first, progress = index(run, folder, gateway)
    assert first["indexed"] == first["files"] == FILES
    assert first["chunks"] >= FILES
    assert (first["unchanged"], first["removed"], first["refused"]) == (0, 0, 0)
    lines = progress.splitlines()
    assert lines[1].startswith("[")
    assert f"50/{FILES} files" in lines[1]
    assert f"{FILES}/{FILES} files, {first['chunks']} chunks" in lines[-1]
    assert "files/s" in lines[-1]
    assert "s left" in lines[-1]
    documents = listed(gateway)
    assert len(documents) == FILES
    assert documents["ko/note-001.md"]["root"] == str(folder)
    assert documents["web/paper.pdf"]["type"] == "pdf"
    url, key = gateway
    hits = httpx.post(
        f"{url}/v1/rag/query",
        json={"collection": "notes", "query": "credential rotation quarterly"},
        headers={"Authorization": f"Bearer {key}"},
    ).json()["results"]
    assert hits[0]["document_id"] == "web/paper.pdf"

    again, _ = index(run, folder, gateway)
    assert (again["indexed"], again["unchanged"], again["removed"]) == (0, FILES, 0)

    (folder / "en" / "note-000.md").write_text("# Note 0\n\nRewritten.")
    (folder / "ko" / "note-003.md").unlink()
    third, _ = index(run, folder, gateway)
    assert (third["indexed"], third["unchanged"], third["removed"]) == (1, FILES - 2, 1)
    documents = listed(gateway)
    assert "ko/note-003.md" not in documents
    assert len(documents) == FILES - 1


def test_unreadable_files_are_reported_and_fail_the_run(
    run, folder: Path, gateway: tuple[str, str]
) -> None:
    (folder / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    url, key = gateway
    result = run("rag", "index", str(folder), "--gateway-url", url, "--key", key)
    assert result.exit_code == 1
    assert "refused latin1.txt: not UTF-8 text" in result.stderr
    assert json.loads(result.stdout)["indexed"] == FILES  # the others were indexed


def test_without_a_key_it_says_how_to_pass_one(run, folder: Path) -> None:
    result = run("rag", "index", str(folder), "--gateway-url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "AI_SUITE_API_KEY" in result.stderr
