"""Hostile request bodies: either a clean validation error or a valid model, never a crash."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.rag.schemas import DocumentsIn, QueryIn
from services.rag.store import point_id, valid_collection_name

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@given(
    doc_id=st.text(max_size=40),
    text=st.text(max_size=60),
    metadata=st.dictionaries(st.text(max_size=10), _JSON, max_size=4),
)
def test_documents_validate_or_fail_cleanly(doc_id: str, text: str, metadata: Any) -> None:
    try:
        body = DocumentsIn.model_validate(
            {"documents": [{"id": doc_id, "text": text, "metadata": metadata}]}
        )
    except ValidationError:
        return
    (doc,) = body.documents
    doc.id.encode("utf-8")  # safe to hash into a point id and to store
    doc.text.encode("utf-8")
    assert point_id("c", doc.id, 0) == point_id("c", doc.id, 0)


@given(query=st.text(max_size=60), filters=st.dictionaries(st.text(max_size=10), _JSON, max_size=3))
def test_queries_validate_or_fail_cleanly(query: str, filters: Any) -> None:
    try:
        body = QueryIn.model_validate({"query": query, "filters": filters})
    except ValidationError:
        return
    body.query.encode("utf-8")
    for value in (body.filters or {}).values():
        assert isinstance(value, str | int | bool)


@given(st.text(max_size=80))
def test_collection_names_are_safe(name: str) -> None:
    if valid_collection_name(name):
        assert name.isascii()
        assert "/" not in name
        assert len(name) <= 63
