"""Retrieval quality of each embedding backend on the labelled set in benchmarks/rag_set/.

Run: .venv/bin/python benchmarks/bench_rag_quality.py [--backends hash,multilingual]

The set: 40 notes (20 English, 20 Korean; sleep, cooking, API keys, git, travel,
taxes, gardening, health, programming...) and 144 questions written apart from
the notes' wording: 53 in the note's language ("within"), 67 in the other language
("cross"), 24 that no note answers ("none"). Each backend indexes the notes with
the service's own code (chunker, Indexer, VectorStore on an in-memory local
Qdrant), then every question is searched like ``POST /query`` does.

Reported per backend and retrieval mode (``dense``: embeddings only; ``hybrid``: the
dense candidates re-ranked by reciprocal rank fusion with the lexical index, as
``RAG_RETRIEVAL=hybrid`` does):

- hit@1, hit@5, MRR and nDCG@10 (one relevant note per question) on the raw ranking;
- the calibrated minimum score: the cut-off in [0, 0.6] (step 0.001) that maximises
  the mean of (a) answerable questions whose note is in the top 5 *above* the
  cut-off and (b) no-answer questions that return nothing; ties go to the lower one;
- with that cut-off (what the service returns): hit@5 within / cross, and the
  false-answer rate = no-answer questions that still return a chunk.

Prints markdown tables (docs/benchmarks.md) and the cut-offs for
services/rag/relevance.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from qdrant_client import QdrantClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.rag.embeddings import Embedder, HashEmbedder, MultilingualEmbedder
from services.rag.indexer import Document, Indexer
from services.rag.metrics import RagMetrics
from services.rag.relevance import CALIBRATED_MIN_SCORES
from services.rag.sparse import query_vector
from services.rag.store import VectorStore

SET = Path(__file__).resolve().parent / "rag_set"
TOP_K = 10
CHUNK = (512, 100)  # the service defaults; 128 or 64 tokens measured no better here
CUT_OFFS = [round(i * 0.001, 3) for i in range(601)]


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    lang: str
    expected: str | None
    mode: str


@dataclass(frozen=True)
class Ranked:
    query: Query
    documents: list[tuple[str, float]]  # distinct documents, best chunk's score, best first

    def rank(self) -> int | None:
        names = [name for name, _ in self.documents]
        return names.index(self.query.expected) + 1 if self.query.expected in names else None

    def above(self, cut: float) -> list[str]:
        """The notes the service returns with this minimum score, in its order."""
        return [name for name, score in self.documents if score >= cut]


def load_set() -> tuple[list[Document], list[Query]]:
    documents = [
        Document(id=p.stem, text=p.read_text(), source=p.name, metadata={"lang": p.stem[:2]})
        for p in sorted((SET / "docs").glob("*.md"))
    ]
    raw = json.loads((SET / "queries.json").read_text())
    queries = [Query(q["id"], q["query"], q["lang"], q["expected"], q["mode"]) for q in raw]
    return documents, queries


def make_embedder(backend: str) -> Embedder:
    if backend == "hash":
        return HashEmbedder(2048)  # the service's default RAG_HASH_DIMENSIONS
    if backend == "multilingual":
        return MultilingualEmbedder()
    raise SystemExit(f"unknown backend {backend!r}: use hash or multilingual")


MODES = ("dense", "hybrid")


async def run_backend(
    backend: str, documents: list[Document], queries: list[Query]
) -> dict[str, tuple[list[Ranked], dict[str, float]]]:
    embedder = make_embedder(backend)
    started = time.perf_counter()
    await embedder.load()
    loaded = time.perf_counter() - started
    store = VectorStore(QdrantClient(location=":memory:"), local=True, description="bench")
    metrics = RagMetrics(CollectorRegistry(), embedder.backend)
    indexer = Indexer(store, embedder, metrics, chunk_size=CHUNK[0], chunk_overlap=CHUNK[1])
    started = time.perf_counter()
    await indexer.index("bench", documents)
    indexed = time.perf_counter() - started
    results = {}
    for mode in MODES:
        ranked = []
        started = time.perf_counter()
        for query in queries:
            (vector,) = await embedder.embed([query.text])
            lexical = query_vector(query.text) if mode == "hybrid" else None
            hits = store.search(
                "bench", vector, top_k=TOP_K, filters=None, min_score=None, lexical=lexical
            )
            # Distinct notes in the order returned (hybrid: fused order), best chunk's
            # cosine score: the score the minimum applies to.
            best: dict[str, float] = {}
            for hit in hits:
                best[hit.document_id] = max(best.get(hit.document_id, -1.0), hit.score)
            order = list(dict.fromkeys(hit.document_id for hit in hits))
            ranked.append(Ranked(query, [(name, best[name]) for name in order]))
        searched = time.perf_counter() - started
        timings = {"load_s": loaded, "index_s": indexed, "query_ms": 1000 * searched / len(queries)}
        results[mode] = (ranked, timings)
    store.close()
    return results


def ranking_metrics(rows: list[Ranked]) -> dict[str, float]:
    ranks = [row.rank() for row in rows]
    n = len(ranks)
    return {
        "n": n,
        "hit@1": sum(r == 1 for r in ranks) / n,
        "hit@5": sum(r is not None and r <= 5 for r in ranks) / n,
        "mrr": sum(1 / r for r in ranks if r) / n,
        "ndcg@10": sum(1 / math.log2(r + 1) for r in ranks if r and r <= 10) / n,
    }


def served(rows: list[Ranked], cut: float) -> float:
    """Answerable questions whose note is in the top 5 of what passes the cut-off."""
    return sum(row.query.expected in row.above(cut)[:5] for row in rows) / len(rows)


def empty_rate(rows: list[Ranked], cut: float) -> float:
    return sum(not row.above(cut) for row in rows) / len(rows)


def calibrate(answerable: list[Ranked], unanswerable: list[Ranked]) -> float:
    def criterion(cut: float) -> float:
        return (served(answerable, cut) + empty_rate(unanswerable, cut)) / 2

    return max(CUT_OFFS, key=lambda cut: (criterion(cut), -cut))


def report(results: dict[tuple[str, str], tuple[list[Ranked], dict[str, float]]]) -> str:
    lines = [
        "| backend | mode | questions | queries | hit@1 | hit@5 | MRR | nDCG@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary = [
        "| backend | mode | min score (calibrated / in relevance.py) | hit@5 within"
        " | hit@5 cross | no-answer → nothing | false-answer rate | load s"
        " | index 40 notes s | ms/query |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (backend, retrieval), (rows, timings) in results.items():
        answerable = [r for r in rows if r.query.expected]
        unanswerable = [r for r in rows if not r.query.expected]
        groups = {
            "within (ko→ko, en→en)": [r for r in answerable if r.query.mode == "within"],
            "cross (ko→en, en→ko)": [r for r in answerable if r.query.mode == "cross"],
            "ko→en": [r for r in answerable if r.query.mode == "cross" and r.query.lang == "ko"],
            "en→ko": [r for r in answerable if r.query.mode == "cross" and r.query.lang == "en"],
            "all answerable": answerable,
        }
        for mode, group in groups.items():
            m = ranking_metrics(group)
            lines.append(
                f"| {backend} | {retrieval} | {mode} | {m['n']} | {m['hit@1']:.2f} "
                f"| {m['hit@5']:.2f} | {m['mrr']:.3f} | {m['ndcg@10']:.3f} |"
            )
        best = calibrate(answerable, unanswerable)
        cut = CALIBRATED_MIN_SCORES.get(backend, best)
        within = served(groups["within (ko→ko, en→en)"], cut)
        cross = served(groups["cross (ko→en, en→ko)"], cut)
        empty = empty_rate(unanswerable, cut)
        summary.append(
            f"| {backend} | {retrieval} | {best:.3f} / {cut:.3f} | {within:.2f} | {cross:.2f} "
            f"| {empty:.2f} | {1 - empty:.2f} | {timings['load_s']:.1f} | {timings['index_s']:.2f} "
            f"| {timings['query_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n\n" + "\n".join(summary)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="hash,multilingual")
    args = parser.parse_args()
    documents, queries = load_set()
    results = {}
    for backend in args.backends.split(","):
        for mode, result in (await run_backend(backend, documents, queries)).items():
            results[(backend, mode)] = result
    print(f"Python {platform.python_version()}, {platform.machine()}; {len(documents)} notes,")
    print(f"{len(queries)} questions, top {TOP_K}, one run.\n")
    print(report(results))


if __name__ == "__main__":
    asyncio.run(main())
