"""Request bodies of the RAG API (responses are plain dicts, see app.py)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

MetadataValue = str | int | float | bool | None
FilterValue = str | int | bool
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_METADATA_KEYS = 32


def _unicode_text(value: str, what: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} is not valid Unicode text (lone surrogate)") from exc
    return value


def _check_keys(mapping: dict[str, object] | None, what: str) -> None:
    if not mapping:
        return
    if len(mapping) > MAX_METADATA_KEYS:
        raise ValueError(f"{what} may have at most {MAX_METADATA_KEYS} keys, got {len(mapping)}")
    for key in mapping:
        if not _METADATA_KEY.fullmatch(key):
            raise ValueError(
                f"{what} key {key!r} must be 1-64 characters of letters, digits, '_' or '-'"
            )


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=512)
    text: str
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if _CONTROL.search(value) or not value.strip():
            raise ValueError("document id must be printable text without control characters")
        return _unicode_text(value, "document id")

    @field_validator("text")
    @classmethod
    def _valid_text(cls, value: str) -> str:
        return _unicode_text(value, "text")

    @field_validator("metadata")
    @classmethod
    def _valid_metadata(cls, value: dict[str, MetadataValue]) -> dict[str, MetadataValue]:
        _check_keys(dict(value), "metadata")
        for item in value.values():
            if isinstance(item, str):
                _unicode_text(item, "metadata value")
        return value


class DocumentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentIn] = Field(min_length=1)


class FilesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paths: list[str] = Field(min_length=1, max_length=1000)


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


class QueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection: str | None = None
    query: str
    top_k: int = Field(default=5, ge=1, le=50)
    filters: dict[str, FilterValue] | None = None
    answer: bool = False
    # None: RAG_MIN_SCORE, else the embedding backend's calibrated cut-off.
    min_score: float | None = Field(default=None, ge=-1.0, le=1.0)

    @field_validator("query")
    @classmethod
    def _valid_query(cls, value: str) -> str:
        return _unicode_text(value, "query")

    @field_validator("filters")
    @classmethod
    def _valid_filters(cls, value: dict[str, FilterValue] | None) -> dict[str, FilterValue] | None:
        _check_keys(dict(value) if value else None, "filters")
        for item in (value or {}).values():
            if isinstance(item, str):
                _unicode_text(item, "filter value")
        return value
