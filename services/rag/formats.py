"""Text out of the file formats users keep: Markdown and text as they are, HTML without
its markup, PDF through ``pypdf`` (its text layer; scanned pages without one have no
text, and a PDF with no text at all is refused rather than indexed empty).

HTML headings become Markdown headings, so the chunker starts new chunks at them as
it does for Markdown; scripts, styles and other invisible elements are dropped.
"""

from __future__ import annotations

import io
import logging
import re
from html.parser import HTMLParser

SUFFIXES = (".md", ".txt", ".html", ".htm", ".pdf")
# A PDF file carries fonts, images and layout around its text: it may be this many
# times RAG_MAX_DOCUMENT_BYTES as a file; its extracted text must still fit the limit.
PDF_SIZE_FACTOR = 32
_INVISIBLE = {"script", "style", "template", "noscript", "head", "svg"}
_BLOCKS = {
    "p", "div", "section", "article", "br", "li", "tr", "table", "ul", "ol", "pre",
    "blockquote", "header", "footer", "main", "nav", "aside", "dd", "dt", "figcaption",
}  # fmt: skip
_SPACE = re.compile(r"\s+")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


class UnreadableFile(ValueError):
    """The file has no text this module can extract; the message says why."""

    def __init__(self, message: str, code: str = "unreadable_file") -> None:
        super().__init__(message)
        self.code = code


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE:
            self.hidden += 1
        elif tag in _HEADINGS:
            self.parts.append("\n\n" + "#" * _HEADINGS[tag] + " ")
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _HEADINGS:
            self.parts.append("\n\n")
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            # Runs of whitespace become one space, kept at the edges: "with <code>x"
            # must not become "withx".
            self.parts.append(_SPACE.sub(" ", data))


def html_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.parts).splitlines())
    text, blank = [], False
    for line in lines:
        if line:
            text.append(line)
            blank = False
        elif not blank and text:
            text.append("")
            blank = True
    return "\n".join(text).strip()


def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader  # imported here: only PDFs pay for it
    from pypdf.errors import PdfReadError

    # pypdf logs every malformed object it works around; a user's PDF is not our bug.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableFile("the PDF is encrypted; save a copy without a password")
        pages = [page.extract_text() or "" for page in reader.pages]
    except PdfReadError as exc:
        raise UnreadableFile(f"not a readable PDF ({exc})") from exc
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise UnreadableFile(
            "the PDF has no text layer (a scan?); run OCR on it first, e.g. ocrmypdf"
        )
    return text


def extract_text(suffix: str, data: bytes) -> str:
    """The text of a file's bytes by its suffix (.md/.txt/.html/.htm UTF-8, .pdf)."""
    suffix = suffix.lower()
    if suffix == ".pdf":
        return pdf_text(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"not UTF-8 text ({exc.reason} at byte {exc.start}); convert it to UTF-8",
            code="not_utf8",
        ) from exc
    # Universal newlines, as Path.read_text gives: CRLF and CR become LF.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return html_text(text) if suffix in (".html", ".htm") else text
