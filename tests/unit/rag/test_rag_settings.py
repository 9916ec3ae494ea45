"""RAG settings: defaults, derived paths, and refused combinations."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.core.settings_errors import InvalidSettings
from services.rag.settings import RagSettings


def test_defaults_live_under_the_data_dir(tmp_path: Path) -> None:
    settings = RagSettings(data_dir=tmp_path, gateway_port=9100)
    assert settings.documents_root == tmp_path.resolve() / "documents"
    assert settings.qdrant_path == tmp_path.resolve() / "qdrant"
    assert settings.resolved_gateway_url == "http://127.0.0.1:9100"
    assert settings.embedding_backend == "multilingual"
    assert (settings.chunk_size, settings.chunk_overlap) == (512, 100)
    assert settings.port == settings.rag_port == 8002


def test_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAG_DOCUMENTS_DIR", str(tmp_path / "docs"))
    monkeypatch.setenv("RAG_CHUNK_SIZE", "256")
    monkeypatch.setenv("RAG_CHUNK_OVERLAP", "32")
    monkeypatch.setenv("GATEWAY_URL", "http://gw:8000/")
    monkeypatch.setenv("QDRANT_URL", "http://qdrant:6333")
    settings = RagSettings(data_dir=tmp_path)
    assert settings.documents_root == (tmp_path / "docs").resolve()
    assert (settings.chunk_size, settings.chunk_overlap) == (256, 32)
    assert settings.resolved_gateway_url == "http://gw:8000"
    assert settings.qdrant_url == "http://qdrant:6333"


def test_overlap_must_be_smaller_than_size(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettings, match="RAG_CHUNK_OVERLAP"):
        RagSettings(data_dir=tmp_path, chunk_size=100, chunk_overlap=100)


def test_openai_backend_defaults_to_the_gateways_embeddings(tmp_path: Path) -> None:
    settings = RagSettings(data_dir=tmp_path, embedding_backend="openai", gateway_port=9100)
    assert settings.resolved_embedding_url == "http://127.0.0.1:9100/v1"
    own = settings.model_copy(update={"embedding_url": "http://embed:8080/v1/"})
    assert own.resolved_embedding_url == "http://embed:8080/v1"


def test_min_score_is_a_cosine(tmp_path: Path) -> None:
    assert RagSettings(data_dir=tmp_path).min_score is None  # the backend's calibrated value
    with pytest.raises(InvalidSettings, match=r"min_score|RAG_MIN_SCORE"):
        RagSettings(data_dir=tmp_path, min_score=1.5)


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettings):
        RagSettings(data_dir=tmp_path, embedding_backend="word2vec")
