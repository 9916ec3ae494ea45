"""The lexical half of hybrid retrieval: sparse vectors for Qdrant's BM25-style index.

Tokens that suit both languages without a tokenizer: Latin and digit words
(lower-cased, English stop words dropped) whole, and Hangul words as character
bigrams (Korean attaches particles to words, so "문서를" and "문서는" share "문서").
A token becomes a dimension by BLAKE2b (stable across processes) into 2^31 slots.

Documents weigh each token by BM25's saturated term frequency,
tf * (k1 + 1) / (tf + k1) (no length normalisation: chunks have similar sizes);
queries weigh each token 1. The inverse document frequency is Qdrant's own
(``Modifier.IDF`` on the collection's sparse vector), so it follows the collection as
it changes. The dot product of the two is then BM25 without length normalisation.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from services.rag.embeddings.hashing import STOP_WORDS

_TOKEN = re.compile(r"[\uac00-\ud7a3]+|[^\W_]+")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
K1 = 1.2
_SLOTS = 2**31 - 1


def tokens(text: str) -> list[str]:
    found: list[str] = []
    for word in _TOKEN.findall(text.lower()):
        if _HANGUL.match(word) and len(word) > 1:
            found.extend(word[i : i + 2] for i in range(len(word) - 1))
        elif _HANGUL.match(word) or word not in STOP_WORDS:
            found.append(word)
    return found


def _slot(token: str) -> int:
    digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _SLOTS


def _vector(weights: dict[int, float]) -> tuple[list[int], list[float]]:
    indices = sorted(weights)
    return indices, [weights[i] for i in indices]


def document_vector(text: str) -> tuple[list[int], list[float]]:
    weights: dict[int, float] = {}
    for token, tf in Counter(tokens(text)).items():
        slot = _slot(token)
        # Two tokens in one slot (rare at 2^31) add up rather than overwrite.
        weights[slot] = weights.get(slot, 0.0) + tf * (K1 + 1) / (tf + K1)
    return _vector(weights)


def query_vector(text: str) -> tuple[list[int], list[float]]:
    return _vector({_slot(token): 1.0 for token in set(tokens(text))})
