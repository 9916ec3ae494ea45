"""Deleting a RAG collection: its creator or an admin (``rag:manage``), nobody else."""

from __future__ import annotations

import pytest

from services.security.db import Database
from services.security.keys import KeyStore
from tests.unit.rag.conftest import Rag


@pytest.fixture
def keys(rag: Rag) -> dict[str, dict[str, str]]:
    """Bearer headers of a second developer and of an admin, in this test's database."""
    database = Database(rag.settings.security_db_path)
    try:
        store = KeyStore(database)
        made = {
            "other": store.create_key("other-dev", "developer").key,
            "admin": store.create_key("boss", "admin").key,
        }
    finally:
        database.close()
    return {name: {"Authorization": f"Bearer {key}"} for name, key in made.items()}


async def create(rag: Rag, name: str, headers: dict[str, str]) -> None:
    response = await rag.client.post("/collections", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text


async def test_another_developer_cannot_delete_a_collection(rag: Rag, keys) -> None:
    await create(rag, "mine", rag.developer)
    refused = await rag.client.delete("/collections/mine", headers=keys["other"])
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "not_collection_owner"
    assert "only its creator or an admin" in error["message"]
    listed = (await rag.client.get("/collections", headers=rag.viewer)).json()["collections"]
    assert [c["name"] for c in listed] == ["mine"]
    assert (await rag.client.delete("/collections/mine", headers=rag.developer)).status_code == 200


async def test_an_admin_may_delete_anyones_collection(rag: Rag, keys) -> None:
    await create(rag, "theirs", rag.developer)
    deleted = await rag.client.delete("/collections/theirs", headers=keys["admin"])
    assert deleted.status_code == 200, deleted.text


async def test_a_collection_made_by_indexing_belongs_to_the_indexer(rag: Rag, keys) -> None:
    indexed = await rag.client.post(
        "/collections/byindex/documents",
        json={"documents": [{"id": "a", "text": "some text"}]},
        headers=keys["other"],
    )
    assert indexed.status_code == 200, indexed.text
    refused = await rag.client.delete("/collections/byindex", headers=rag.developer)
    assert refused.status_code == 403
    assert (
        await rag.client.delete("/collections/byindex", headers=keys["other"])
    ).status_code == 200


async def test_a_collection_without_an_owner_is_admin_only(rag: Rag, keys) -> None:
    """Collections created before owners were recorded."""
    rag.app.state.store.create("legacy", embedder="hash", dimension=4)
    refused = await rag.client.delete("/collections/legacy", headers=rag.developer)
    assert refused.status_code == 403
    assert "unknown user" in refused.json()["error"]["message"]
    assert (
        await rag.client.delete("/collections/legacy", headers=keys["admin"])
    ).status_code == 200


async def test_a_viewer_still_cannot_delete_and_missing_is_404(rag: Rag, keys) -> None:
    await create(rag, "kept", rag.developer)
    assert (await rag.client.delete("/collections/kept", headers=rag.viewer)).status_code == 403
    missing = await rag.client.delete("/collections/nope", headers=keys["other"])
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "collection_not_found"
