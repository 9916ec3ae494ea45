"""Indexing speed per document as a collection grows: at 200 documents and at N.

Run: .venv/bin/python benchmarks/bench_rag_index.py [--documents 10000] [--batch 100]

Indexes N short two-chunk notes into an on-disk local Qdrant (the service's default
store) through the service's Indexer, in requests of ``--batch`` documents as
``ai-suite rag index`` sends them, with the ``hash`` embedder so the store's
work is what is measured (the model's cost per chunk does not grow with the
collection). Prints the time per document of the first 200 documents, of the last
200, and their ratio (issue 13's goal: at most 1.5).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.rag.embeddings import HashEmbedder
from services.rag.indexer import Document, Indexer
from services.rag.metrics import RagMetrics
from services.rag.store import VectorStore

WINDOW = 200


def note(i: int) -> Document:
    text = (
        f"# Note {i}\n\nMeeting {i} covered the budget for project {i % 97}. "
        f"Action items went to team {i % 13}.\n\n## 메모 {i}\n\n회의 {i}에서 예산을 논의했다."
    )
    return Document(id=f"notes/{i:06}.md", text=text, source=f"{i:06}.md", metadata={"n": i})


async def run(total: int, batch: int) -> list[float]:
    """Seconds per document of each request, in order."""
    with tempfile.TemporaryDirectory() as folder:
        store = VectorStore.open(url=None, api_key=None, path=Path(folder) / "qdrant")
        embedder = HashEmbedder(256)
        indexer = Indexer(
            store, embedder, RagMetrics(CollectorRegistry(), "hash"), chunk_size=32, chunk_overlap=4
        )
        per_document = []
        for start in range(0, total, batch):
            documents = [note(i) for i in range(start, min(start + batch, total))]
            began = time.perf_counter()
            await indexer.index("bench", documents)
            per_document.append((time.perf_counter() - began) / len(documents))
        store.close()
    return per_document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    began = time.perf_counter()
    timings = asyncio.run(run(args.documents, args.batch))
    window = max(1, WINDOW // args.batch)
    first = sum(timings[:window]) / window
    last = sum(timings[-window:]) / window
    print(f"| documents | ms/doc first {WINDOW} | ms/doc last {WINDOW} | ratio | total s |")
    print("|---|---|---|---|---|")
    print(
        f"| {args.documents} | {1000 * first:.2f} | {1000 * last:.2f} | {last / first:.2f} "
        f"| {time.perf_counter() - began:.0f} |"
    )


if __name__ == "__main__":
    main()
