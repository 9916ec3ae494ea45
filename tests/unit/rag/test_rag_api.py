"""The RAG HTTP API in-process: indexing, re-indexing, deletion, queries, limits, auth."""

from __future__ import annotations

from tests.unit.rag.conftest import Rag

LONG_EN = " ".join(
    f"Sentence number {i} talks about topic {i % 7} and the weather in city {i}." for i in range(12)
)


async def test_index_and_query_returns_the_contract_shape(rag: Rag) -> None:
    response = await rag.index(
        "notes",
        {
            "id": "a",
            "text": "Run make test to lint and test everything.",
            "metadata": {"lang": "en"},
        },
        {"id": "b", "text": "Sourdough bread needs a starter.", "metadata": {"lang": "en"}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["chunks_indexed"] == 2
    assert body["chunks_removed"] == 0
    result = await rag.query("notes", "how do I run the tests?", top_k=1)
    assert result.status_code == 200, result.text
    data = result.json()
    assert data["collection"] == "notes"
    assert data["cached"] is False
    (hit,) = data["results"]
    assert set(hit) == {
        "text",
        "score",
        "document_id",
        "chunk_index",
        "chunk_count",
        "char_start",
        "char_end",
        "source",
        "metadata",
    }
    assert hit["document_id"] == "a"
    assert hit["source"] == "a"
    assert hit["metadata"] == {"lang": "en"}
    # The chunk's place in its document: the only chunk, all of the text.
    text = "Run make test to lint and test everything."
    assert (hit["chunk_index"], hit["chunk_count"]) == (0, 1)
    assert text[hit["char_start"] : hit["char_end"]] == hit["text"] == text
    assert data["min_score"] == 0.108  # the hash backend's calibrated cut-off
    assert "answer" not in data


async def test_reindexing_twice_keeps_the_point_count(rag: Rag) -> None:
    doc = {"id": "long", "text": LONG_EN}
    first = (await rag.index("c", doc)).json()
    assert first["chunks_indexed"] > 3
    points = rag.app.state.store.count("c")
    second = (await rag.index("c", doc)).json()
    assert second["chunks_indexed"] == first["chunks_indexed"]
    assert second["chunks_removed"] == 0
    assert rag.app.state.store.count("c") == points == first["chunks_indexed"]


async def test_shrinking_a_document_removes_exactly_its_stale_chunks(rag: Rag) -> None:
    other = {"id": "other", "text": LONG_EN.replace("weather", "traffic")}
    await rag.index("c", {"id": "long", "text": LONG_EN}, other)
    before = {d["id"]: d["chunks"] for d in (await docs(rag, "c"))}
    result = (await rag.index("c", {"id": "long", "text": "Now it is one short sentence."})).json()
    assert result["documents"] == [
        {"id": "long", "chunks_indexed": 1, "chunks_removed": before["long"] - 1}
    ]
    after = {d["id"]: d["chunks"] for d in (await docs(rag, "c"))}
    assert after == {"long": 1, "other": before["other"]}
    assert rag.app.state.store.count("c") == 1 + before["other"]
    hits = (await rag.query("c", "weather in city", top_k=50)).json()["results"]
    assert all("weather" not in h["text"] for h in hits if h["document_id"] == "long")


async def test_same_document_id_in_two_collections_is_independent(rag: Rag) -> None:
    await rag.index("one", {"id": "d", "text": "Alpha text about llamas."})
    await rag.index("two", {"id": "d", "text": "Beta text about lizards."})
    assert (await rag.query("one", "llamas")).json()["results"][0]["text"].startswith("Alpha")
    assert (await rag.query("two", "lizards")).json()["results"][0]["text"].startswith("Beta")


async def docs(rag: Rag, collection: str) -> list[dict]:
    response = await rag.client.get(f"/collections/{collection}/documents", headers=rag.viewer)
    assert response.status_code == 200, response.text
    return response.json()["documents"]


async def test_delete_and_list_documents(rag: Rag) -> None:
    await rag.index(
        "c",
        {"id": "guides/a.md", "text": "First.", "metadata": {"source": "guides/a.md"}},
        {"id": "b", "text": "Second."},
    )
    listed = await docs(rag, "c")
    assert [d["id"] for d in listed] == ["b", "guides/a.md"]
    assert listed[1] == {
        "id": "guides/a.md",
        "source": "guides/a.md",
        "chunks": 1,
        "metadata": {"source": "guides/a.md"},
    }
    deleted = await rag.client.delete("/collections/c/documents/guides/a.md", headers=rag.developer)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["chunks_removed"] == 1
    assert [d["id"] for d in await docs(rag, "c")] == ["b"]
    again = await rag.client.delete("/collections/c/documents/guides/a.md", headers=rag.developer)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "document_not_found"
    missing = await rag.client.delete("/collections/nope/documents/x", headers=rag.developer)
    assert missing.status_code == 404
    assert (
        await rag.client.get("/collections/nope/documents", headers=rag.viewer)
    ).status_code == 404


async def test_collection_lifecycle(rag: Rag) -> None:
    created = await rag.client.post("/collections", json={"name": "team-a"}, headers=rag.developer)
    assert created.status_code == 201, created.text
    dup = await rag.client.post("/collections", json={"name": "team-a"}, headers=rag.developer)
    assert dup.status_code == 409
    listed = (await rag.client.get("/collections", headers=rag.viewer)).json()["collections"]
    assert [c["name"] for c in listed] == ["team-a"]
    assert listed[0]["points"] == 0
    assert listed[0]["embedder"] == "hash-v1/256"
    await rag.index("team-a", {"id": "x", "text": "Some text."})
    listed = (await rag.client.get("/collections", headers=rag.viewer)).json()["collections"]
    assert listed[0]["version"] == 1
    assert listed[0]["points"] == 1
    gone = await rag.client.delete("/collections/team-a", headers=rag.developer)
    assert gone.status_code == 200
    assert (
        await rag.client.delete("/collections/team-a", headers=rag.developer)
    ).status_code == 404
    assert (await rag.query("team-a", "text")).status_code == 404


async def test_invalid_collection_names_are_refused(rag: Rag) -> None:
    for name in ["Upper", "-dash", "a" * 64, "sp ace", "ü"]:
        response = await rag.client.post("/collections", json={"name": name}, headers=rag.developer)
        assert response.status_code == 422, name
        assert response.json()["error"]["code"] == "invalid_collection_name"
    response = await rag.query("bad name", "hello")
    assert response.status_code == 422


async def test_viewer_may_query_but_not_index(rag: Rag) -> None:
    denied = await rag.client.post(
        "/collections/c/documents",
        json={"documents": [{"id": "x", "text": "t"}]},
        headers=rag.viewer,
    )
    assert denied.status_code == 403
    assert "rag:index" in denied.json()["error"]["message"]
    assert (await rag.client.get("/collections")).status_code == 401
    assert (await rag.client.post("/query", json={"query": "x"})).status_code == 401


async def test_limits_answer_413_and_422_with_clear_messages(make_rag) -> None:
    async for rag in make_rag(max_document_bytes=100, max_documents=2, max_query_chars=20):
        big = await rag.index("c", {"id": "big", "text": "가" * 34})  # 102 bytes in UTF-8
        assert big.status_code == 413
        assert "102 bytes" in big.json()["error"]["message"]
        assert "RAG_MAX_DOCUMENT_BYTES" in big.json()["error"]["message"]
        many = await rag.index("c", *({"id": str(i), "text": "t"} for i in range(3)))
        assert many.status_code == 413
        assert "RAG_MAX_DOCUMENTS" in many.json()["error"]["message"]
        long_query = await rag.query("c", "q" * 21)
        assert long_query.status_code == 422
        assert long_query.json()["error"]["code"] == "query_too_long"
        empty = await rag.index("c", {"id": "e", "text": "   \n"})
        assert empty.status_code == 422
        assert (await rag.query("c", "  ")).json()["error"]["code"] == "empty_query"
        dup = await rag.index("c", {"id": "d", "text": "a"}, {"id": "d", "text": "b"})
        assert dup.status_code == 422
        assert "twice" in dup.json()["error"]["message"]
        assert rag.app.state.store.exists("c") is False  # nothing was half-indexed


async def test_bad_bodies_are_422(rag: Rag) -> None:
    bad = [
        {"documents": []},
        {"documents": [{"id": "", "text": "x"}]},
        {"documents": [{"id": "a\nb", "text": "x"}]},
        {"documents": [{"id": "a", "text": "x", "metadata": {"bad key": 1}}]},
        {"documents": [{"id": "a", "text": "x", "metadata": {"k": {"nested": 1}}}]},
        {"documents": [{"id": "a", "text": "x", "extra": 1}]},
    ]
    for body in bad:
        response = await rag.client.post(
            "/collections/c/documents", json=body, headers=rag.developer
        )
        assert response.status_code == 422, body
    lone_surrogate = '{"documents": [{"id": "a", "text": "bad \\ud800 text"}]}'
    response = await rag.client.post(
        "/collections/c/documents",
        content=lone_surrogate,
        headers={**rag.developer, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert "lone surrogate" in response.json()["error"]["message"]
    for top_k in (0, 51):
        assert (await rag.query("c", "x", top_k=top_k)).status_code == 422


async def test_filters_restrict_results_by_metadata(rag: Rag) -> None:
    await rag.index(
        "c",
        {"id": "en", "text": "Backups run nightly.", "metadata": {"lang": "en", "v": 1}},
        {"id": "ko", "text": "Backups 매일 밤 실행.", "metadata": {"lang": "ko", "v": 2}},
    )
    only_ko = (await rag.query("c", "backups", filters={"lang": "ko"})).json()["results"]
    assert [h["document_id"] for h in only_ko] == ["ko"]
    by_int = (await rag.query("c", "backups", filters={"v": 1})).json()["results"]
    assert [h["document_id"] for h in by_int] == ["en"]
    none = (await rag.query("c", "backups", filters={"lang": "fr"})).json()["results"]
    assert none == []


async def test_query_defaults_to_the_default_collection(rag: Rag) -> None:
    await rag.index("default", {"id": "x", "text": "Default collection text."})
    response = await rag.client.post("/query", json={"query": "default"}, headers=rag.viewer)
    assert response.status_code == 200
    assert response.json()["collection"] == "default"
