"""The minimum score: below it a chunk is not relevant and is not returned.

Cosine scores mean different things per backend (the hash backend's 0.2 is a
shared word; the multilingual model's 0.2 is an unrelated sentence), so each
backend has its own cut-off, calibrated on the retrieval benchmark
(``benchmarks/bench_rag_quality.py``, results in docs/benchmarks.md): the value that
maximises the mean of answerable queries whose right document is still in the top
5 and no-answer queries that return nothing. ``RAG_MIN_SCORE`` replaces it for all
queries, a query's ``min_score`` for that query.

``openai`` serves whatever model the server has, whose scale nobody calibrated
here: no cut-off unless ``RAG_MIN_SCORE`` sets one.
"""

from __future__ import annotations

CALIBRATED_MIN_SCORES: dict[str, float] = {
    "multilingual": 0.138,
    "hash": 0.108,
}


def default_min_score(backend: str, configured: float | None) -> float | None:
    """``RAG_MIN_SCORE`` when set, else the backend's calibrated value (None: no cut-off)."""
    if configured is not None:
        return configured
    return CALIBRATED_MIN_SCORES.get(backend)
