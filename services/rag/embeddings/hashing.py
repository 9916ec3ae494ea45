"""``hash`` embeddings: deterministic feature hashing, no model, no download.

The fast option, for tests and development: it matches shared words, word pairs
and character n-grams, so it finds documents that use the question's words but
knows nothing about synonyms, meaning or other languages. The default backend,
``multilingual``, is the one for real retrieval (see docs/rag.md and the benchmark
in docs/benchmarks.md).

Features of a text (lower-cased, Unicode word runs):

- every word that is not an English stop word (weight 1.0);
- pairs of consecutive such words (0.7);
- character 3-grams of Latin words with boundary marks (0.25 each), so
  "tests" still meets "test";
- character 2-grams of Hangul words (0.5 each), so "문서를" meets "문서는" without a
  Korean tokenizer (particles are attached to words).

Counts are dampened (1 + ln n), each feature is hashed with BLAKE2b (stable across
processes, unlike ``hash()``) to a dimension and a sign, and the vector is
L2-normalised, so the dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool

_WORD = re.compile(r"\w+")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
STOP_WORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "so",
        "that",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "my",
        "me",
        "we",
        "our",
    }
)


def _features(text: str) -> Counter[str]:
    features: Counter[str] = Counter()
    all_words = _WORD.findall(text.lower())
    # A text of stop words only ("how do I?") keeps them rather than becoming a zero
    # vector, which has no cosine similarity to anything.
    words = [w for w in all_words if w not in STOP_WORDS] or all_words
    for word in words:
        # Korean words carry particles (문서를/문서는), so whole Hangul words rarely match:
        # they get a lower weight ("h") and their syllable pairs carry the signal.
        features[f"{'h' if _HANGUL.search(word) else 'w'}:{word}"] += 1
    for left, right in itertools.pairwise(words):
        features[f"b:{left} {right}"] += 1
    for word in words:
        if _HANGUL.search(word):
            for i in range(len(word) - 1):
                features[f"k:{word[i : i + 2]}"] += 1
        elif len(word) > 2:
            marked = f"<{word}>"
            for i in range(len(marked) - 2):
                features[f"c:{marked[i : i + 3]}"] += 1
    if not features:
        # No word characters at all (punctuation, emoji, empty): one shared feature.
        features["w:" + (text.strip() or "<empty>")] += 1
    return features


_WEIGHTS = {"w": 1.0, "h": 0.5, "b": 0.7, "c": 0.25, "k": 1.0}


def _slot(feature: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "big")
    return value % dimensions, (1.0 if value >> 63 else -1.0)


def hash_embedding(text: str, dimensions: int) -> list[float]:
    vector = [0.0] * dimensions
    for feature, count in _features(text).items():
        index, sign = _slot(feature, dimensions)
        vector[index] += sign * _WEIGHTS[feature[0]] * (1.0 + math.log(count))
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        return vector
    return [v / norm for v in vector]


class HashEmbedder:
    """Feature-hashing embedder (see the module docstring for what it is good for)."""

    backend = "hash"

    def __init__(self, dimensions: int = 2048) -> None:
        self._dimensions = dimensions

    @property
    def identity(self) -> str:
        return f"hash-v1/{self._dimensions}"

    @property
    def loaded(self) -> bool:
        return True  # no model to load

    async def load(self) -> None:
        return None

    async def dimension(self) -> int:
        return self._dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await run_in_threadpool(
            lambda: [hash_embedding(text, self._dimensions) for text in texts]
        )

    async def aclose(self) -> None:
        return None
