"""Limits before work on the RAG service (docs/security.md)."""

from __future__ import annotations

from tests.support.raw_asgi import call, endless


async def test_deep_json_is_400_not_500(rag) -> None:
    for path, headers in (("/query", rag.viewer), ("/collections/c/documents", rag.developer)):
        response = await rag.client.post(
            path,
            content=b'{"query": ' + b"[" * 500 + b"]" * 500 + b"}",
            headers={**headers, "content-type": "application/json"},
        )
        assert response.status_code == 400, path
        assert response.json()["error"]["code"] == "json_too_deep"


async def test_a_chunked_upload_over_the_limit_is_cut_off(make_rag) -> None:
    async for service in make_rag(max_body_bytes=200_000):
        result = await call(
            service.app,
            "POST",
            "/collections/c/documents",
            endless(b" " * 50_000),
            headers={**service.developer, "content-type": "application/json"},
        )
        assert result.status == 413
        assert result.pulled <= 250_000
        assert "AI_SUITE_MAX_BODY_BYTES" in result.json()["error"]["message"]
