"""Markdown, text, HTML and PDF files become text (services/rag/formats.py), and the
``/files`` route indexes them."""

from __future__ import annotations

import pytest

from services.rag.formats import UnreadableFile, extract_text, html_text
from tests.support.tiny_pdf import tiny_pdf
from tests.unit.rag.conftest import Rag

PAGE = """<!doctype html><html><head><title>t</title><style>p{color:red}</style></head>
<body><nav>Home</nav><h1>API keys</h1><p>Revoke a key with
<code>ai-suite keys revoke</code>.</p><script>var secret = 1;</script>
<h2>&#53412; &amp; more</h2><ul><li>one</li><li>two</li></ul></body></html>"""


def test_html_keeps_visible_text_and_headings() -> None:
    text = html_text(PAGE)
    assert "# API keys" in text
    assert "Revoke a key with ai-suite keys revoke." in text
    assert "## 키 & more" in text  # character references decoded
    assert "secret" not in text
    assert "color" not in text
    assert "one" in text.splitlines()
    assert "two" in text.splitlines()


def test_pdf_text_layer_is_read() -> None:
    text = extract_text(".PDF", tiny_pdf("Revoke the API key", "with ai-suite keys revoke"))
    assert "Revoke the API key" in text
    assert "ai-suite keys revoke" in text


@pytest.mark.parametrize(
    ("suffix", "data", "code", "message"),
    [
        (".pdf", b"%PDF-1.4 broken", "unreadable_file", "not a readable PDF"),
        (".pdf", tiny_pdf(), "unreadable_file", "no text layer"),
        (".txt", "caf\xe9".encode("latin-1"), "not_utf8", "not UTF-8"),
    ],
)
def test_unreadable_files_say_why(suffix: str, data: bytes, code: str, message: str) -> None:
    with pytest.raises(UnreadableFile, match=message) as info:
        extract_text(suffix, data)
    assert info.value.code == code


async def test_files_route_indexes_html_and_pdf(rag: Rag) -> None:
    root = rag.settings.documents_root
    root.mkdir(parents=True)
    (root / "keys.html").write_text(PAGE)
    (root / "keys.pdf").write_bytes(tiny_pdf("Rotate credentials every quarter"))
    (root / "scan.pdf").write_bytes(tiny_pdf())
    response = await rag.client.post(
        "/collections/web/files", json={"paths": ["keys.html", "keys.pdf"]}, headers=rag.developer
    )
    assert response.status_code == 200, response.text
    hits = (await rag.query("web", "rotate credentials quarter")).json()["results"]
    assert hits[0]["document_id"] == "keys.pdf"
    assert hits[0]["metadata"] == {"path": "keys.pdf", "type": "pdf"}
    scan = await rag.client.post(
        "/collections/web/files", json={"paths": ["scan.pdf"]}, headers=rag.developer
    )
    assert scan.status_code == 422
    assert "no text layer" in scan.json()["error"]["message"]
