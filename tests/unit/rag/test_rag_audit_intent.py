"""RAG changes live in Qdrant, outside the security database's transactions: each one
writes an intent row before it touches Qdrant and its outcome after (issue 11), so a
``kill -9`` in between leaves an open call that the next start marks ``interrupted``."""

from __future__ import annotations

import json

from services.security.db import Database
from tests.unit.rag.conftest import Rag


def rows(rag: Rag) -> list[dict]:
    database = Database(rag.settings.security_db_path)
    try:
        return [
            dict(r)
            for r in database.query(
                "SELECT action, outcome, status, call_id, details FROM audit_log"
                " WHERE action = 'rag:index' ORDER BY id"
            )
        ]
    finally:
        database.close()


async def test_each_change_has_an_intent_and_an_outcome_row(rag: Rag) -> None:
    created = await rag.client.post("/collections", json={"name": "notes"}, headers=rag.developer)
    assert created.status_code == 201
    indexed = await rag.index("notes", {"id": "a", "text": "alpha beta gamma"})
    assert indexed.status_code == 200
    again = await rag.client.post("/collections", json={"name": "notes"}, headers=rag.developer)
    assert again.status_code == 409
    gone = await rag.client.delete("/collections/notes/documents/a", headers=rag.developer)
    assert gone.status_code == 200
    dropped = await rag.client.delete("/collections/notes", headers=rag.developer)
    assert dropped.status_code == 200

    found = rows(rag)
    operations = [(json.loads(r["details"])["operation"], r["outcome"], r["status"]) for r in found]
    assert operations == [
        ("create_collection", "started", None),
        ("create_collection", "ok", 200),
        ("index", "started", None),
        ("index", "ok", 200),
        ("create_collection", "started", None),
        ("create_collection", "error", 409),
        ("delete_document", "started", None),
        ("delete_document", "ok", 200),
        ("delete_collection", "started", None),
        ("delete_collection", "ok", 200),
    ]
    # Pairs: each intent and its outcome share one call id, and no call stays open.
    call_ids = [r["call_id"] for r in found]
    assert call_ids[0::2] == call_ids[1::2]
    assert len(set(call_ids)) == 5
    assert json.loads(found[3]["details"])["indexed"] >= 1
    assert json.loads(found[5]["details"])["error"] == "collection_exists"
    assert rag.app.state.audit.open_calls() == 0


async def test_no_intent_row_means_qdrant_is_not_touched(rag: Rag) -> None:
    database = Database(rag.settings.security_db_path)
    try:
        with database.transaction() as conn:
            conn.execute(
                "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log WHEN NEW.outcome = 'started'"
                " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
    finally:
        database.close()
    refused = await rag.client.post("/collections", json={"name": "x"}, headers=rag.developer)
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "audit_unavailable")
    listed = (await rag.client.get("/collections", headers=rag.viewer)).json()["collections"]
    assert listed == []
