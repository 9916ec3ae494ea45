"""MCP's rag_search against the real RAG service, sharing one security database.

The predecessor's rag_search read the wrong response fields and always said
"no response"; only a test against the real service shows the fields agree.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from services.mcp.app import create_app as create_mcp
from services.mcp.settings import McpSettings
from services.rag.app import create_app as create_rag
from services.rag.settings import RagSettings
from tests.support.keys import make_key
from tests.support.live import serve_in_thread


def test_rag_search_returns_the_rag_services_chunks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = make_key(data / "security.db", "dev", "developer")
    auth = {"Authorization": f"Bearer {key}"}
    with serve_in_thread(create_rag(RagSettings(data_dir=data))) as rag:
        indexed = httpx.post(
            f"{rag}/collections/notes/documents",
            headers=auth,
            json={
                "documents": [
                    {"id": "tea", "text": "Green tea is brewed at 80 degrees for two minutes."},
                    {"id": "bike", "text": "Bicycle tyres need 4 bar of pressure."},
                    {"id": "kimchi", "text": "김치는 배추와 고춧가루로 담근다."},
                ]
            },
        )
        assert indexed.status_code == 200, indexed.text
        with serve_in_thread(create_mcp(McpSettings(data_dir=data, rag_url=rag))) as mcp:
            english = httpx.post(
                f"{mcp}/tools/rag_search/call",
                headers=auth,
                json={"arguments": {"collection": "notes", "query": "how hot for green tea"}},
            )
            korean = httpx.post(
                f"{mcp}/tools/rag_search/call",
                headers=auth,
                json={"arguments": {"collection": "notes", "query": "김치 배추"}},
            )
    assert english.status_code == 200, english.text
    result = english.json()["result"]
    assert result["results"], result
    top = result["results"][0]
    assert top["document_id"] == "tea"
    assert "80 degrees" in top["text"]
    assert {"score", "chunk_index", "source"} <= top.keys()
    assert korean.json()["result"]["results"][0]["document_id"] == "kimchi"
