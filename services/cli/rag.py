"""``ai-suite rag index PATH --collection NAME``: index a local folder of any size.

Markdown, text, HTML and PDF files (their text, extracted here by
``services.rag.formats`` exactly as the service's ``/files`` does).

Through the gateway's HTTP API (``/v1/rag/...``) with an API key, like every other
client: the files are read here and sent as documents in batches small enough for
the service's limits (``--batch`` documents, at most ``MAX_BATCH_BYTES`` of JSON), so
a folder of any size is indexed without a 413. Incremental by content: each document
carries the SHA-256 of its file and the folder it came from; a re-run skips files
whose hash the collection already holds and deletes the documents of files that are
gone from that folder. A progress bar on stderr shows files, chunks, rate and time
left.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import httpx

from services.cli.approvals import KEY_ENV, key_option, url_option
from services.core.http import default_ssl_context
from services.core.settings import CoreSettings
from services.rag.formats import SUFFIXES, UnreadableFile, extract_text

# Below the services' default 16 MiB body limit (AI_SUITE_MAX_BODY_BYTES) with room
# for JSON escaping of non-ASCII text.
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_FILE_BYTES = 1_048_576  # RAG_MAX_DOCUMENT_BYTES' default; larger files are reported


@dataclass(frozen=True)
class LocalFile:
    id: str  # path relative to the indexed folder, with "/"
    path: Path
    sha256: str
    size: int


def scan(root: Path) -> list[LocalFile]:
    """Every indexable file under ``root`` (symbolic links are not followed)."""
    files = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in SUFFIXES or path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        files.append(
            LocalFile(
                id=path.relative_to(root).as_posix(),
                path=path,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
            )
        )
    return files


def batches(
    files: list[LocalFile], max_count: int, max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[list[LocalFile]]:
    """Consecutive groups of at most ``max_count`` files and about ``max_bytes``."""
    batch: list[LocalFile] = []
    size = 0
    for file in files:
        if batch and (len(batch) >= max_count or size + file.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(file)
        size += file.size
    if batch:
        yield batch


class RagApi:
    def __init__(self, base: str, key: str | None, timeout: float) -> None:
        if not key:
            raise click.UsageError(f"an API key is required: pass --key or set {KEY_ENV}")
        self.base = f"{base}/v1/rag"
        # trust_env=False: never send a loopback call through HTTP_PROXY.
        self.client = httpx.Client(
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
            trust_env=False,
            verify=default_ssl_context(),
        )

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, f"{self.base}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise click.ClickException(
                f"cannot reach the gateway at {self.base} ({type(exc).__name__}: {exc});"
                " is `ai-suite up` running? (set --gateway-url otherwise)"
            ) from None
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            raise click.ClickException(f"{message} (HTTP {response.status_code})")
        return response.json()


def _text(file: LocalFile) -> str:
    """The file's text as the service indexes it; UnreadableFile says why not."""
    text = extract_text(file.path.suffix, file.path.read_bytes())
    size = len(text.encode("utf-8"))
    if size > MAX_FILE_BYTES:
        raise UnreadableFile(f"{size} bytes of text, over the {MAX_FILE_BYTES}-byte limit")
    if not text.strip():
        raise UnreadableFile("no text")
    return text


def _document(file: LocalFile, text: str, root: str) -> dict[str, Any]:
    return {
        "id": file.id,
        "text": text,
        "metadata": {
            "source": file.id,
            "path": file.id,
            "type": file.path.suffix.lower().lstrip("."),
            "sha256": file.sha256,
            "root": root,
        },
    }


@click.group()
def rag() -> None:
    """Your documents in the RAG service (through the gateway API)."""


@rag.command("index")
@click.argument(
    "path", type=click.Path(exists=True, file_okay=False, path_type=Path, resolve_path=True)
)
@click.option("--collection", default="default", show_default=True, help="Collection name.")
@click.option(
    "--batch",
    "batch_size",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="Documents per request (at most the service's RAG_MAX_DOCUMENTS).",
)
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds/request.")
@key_option
@url_option
def index(
    path: Path,
    collection: str,
    batch_size: int,
    timeout: float,
    key: str | None,
    gateway_url: str | None,
) -> None:
    """Index the .md, .txt, .html and .pdf files under PATH, incrementally."""
    settings = CoreSettings()
    base = (gateway_url or settings.service_url(settings.gateway_port)).rstrip("/")
    api = RagApi(base, key, timeout)
    root = str(path)
    try:
        files = scan(path)
        listed = api.call("GET", f"/collections/{collection}/documents", missing_ok=True)
        known = {
            d["id"]: d.get("metadata") or {} for d in (listed or {"documents": []})["documents"]
        }
        todo = [f for f in files if known.get(f.id, {}).get("sha256") != f.sha256]
        present = {f.id for f in files}
        gone = [
            doc_id
            for doc_id, meta in known.items()
            if meta.get("root") == root and doc_id not in present
        ]
        skipped = len(files) - len(todo)
        click.echo(
            f"{path}: {len(files)} files; {len(todo)} to index, {skipped} unchanged, "
            f"{len(gone)} to remove -> collection {collection!r}",
            err=True,
        )
        refused: dict[str, str] = {}
        chunks = _send(api, collection, todo, root, batch_size, refused)
        for doc_id in gone:
            api.call("DELETE", f"/collections/{collection}/documents/{quote(doc_id)}")
    finally:
        api.close()
    for doc_id, why in sorted(refused.items()):
        click.echo(f"refused {doc_id}: {why}", err=True)
    summary = {
        "collection": collection,
        "files": len(files),
        "indexed": len(todo) - len(refused),
        "chunks": chunks,
        "unchanged": skipped,
        "removed": len(gone),
        "refused": len(refused),
    }
    click.echo(json.dumps(summary))
    if refused:
        raise SystemExit(1)


class Progress:
    """Files, chunks, rate and time left on stderr: one line redrawn on a terminal, a
    line per batch otherwise (logs, CI), so progress is visible either way."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.files = 0
        self.chunks = 0
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.files / elapsed
        left = (self.total - self.files) / rate if rate else 0.0
        width = 30
        filled = width * self.files // max(self.total, 1)
        bar = "#" * filled + "-" * (width - filled)
        return (
            f"[{bar}] {self.files}/{self.total} files, {self.chunks} chunks, "
            f"{rate:.1f} files/s, {elapsed:.0f} s, ~{left:.0f} s left"
        )

    def update(self, files: int, chunks: int) -> None:
        self.files += files
        self.chunks += chunks
        if self.tty:
            sys.stderr.write("\r" + self.line())
            sys.stderr.flush()
        else:
            click.echo(self.line(), err=True)

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def _send(
    api: RagApi,
    collection: str,
    todo: list[LocalFile],
    root: str,
    size: int,
    refused: dict[str, str],
) -> int:
    """Index ``todo`` in batches; files without text go to ``refused`` with the reason."""
    progress = Progress(len(todo))
    try:
        for batch in batches(todo, size):
            documents = []
            for file in batch:
                try:
                    documents.append(_document(file, _text(file), root))
                except UnreadableFile as exc:
                    refused[file.id] = str(exc)
            chunks = 0
            if documents:
                answer = api.call(
                    "POST",
                    f"/collections/{collection}/documents",
                    json={"documents": documents},
                )
                chunks = int(answer["chunks_indexed"])
            progress.update(len(batch), chunks)
    finally:
        progress.close()
    return progress.chunks
