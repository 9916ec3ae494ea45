"""Limits before work on real sockets: a 300 MB body is refused without being read into
memory, chunked bodies are cut off at the limit, oversized headers get 431."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from services.core.app import build_service_app
from services.core.errors import install_error_handlers
from services.core.limits import RequestLimits
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.support.live import free_port, serve_in_thread

BIG = 300 * 1024 * 1024
CHUNK = b"\x20" * (1024 * 1024)  # one buffer, sent again and again: the client stays small
MiB = 1024 * 1024


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


def connect(base: str) -> socket.socket:
    parts = urlsplit(base)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    return sock


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            piece = sock.recv(65536)
        except ConnectionResetError:
            break
        if not piece:
            break
        data += piece
    return data


def send_body(sock: socket.socket, total: int, *, chunked: bool) -> int:
    """Send up to ``total`` bytes; stop when the server stops taking them. Returns the
    number of bytes the kernel accepted."""
    sent = 0
    try:
        while sent < total:
            if chunked:
                sock.sendall(b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n")
            else:
                sock.sendall(CHUNK)
            sent += len(CHUNK)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = GatewaySettings(data_dir=tmp_path / "data", mcp_url=dead, rag_url=dead)
    with serve_in_thread(create_app(settings)) as base:
        yield base


def test_300_mb_chunked_without_a_key_is_401_and_never_read_into_memory(gateway: str) -> None:
    before = rss()
    with connect(gateway) as sock:
        sock.sendall(
            b"POST /v1/tools/write_file/call HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sent = send_body(sock, BIG, chunked=True)
        response = read_response(sock)
    grown = rss() - before
    assert response.startswith(b"HTTP/1.1 401 "), response[:200]
    assert b"invalid_api_key" in response
    assert sent < BIG  # the server closed the connection instead of draining 300 MB
    assert grown < 20 * MiB, f"RSS grew by {grown / MiB:.1f} MiB"


def test_300_mb_with_content_length_is_413_before_the_key_is_even_looked_at(gateway: str) -> None:
    before = rss()
    with connect(gateway) as sock:
        sock.sendall(
            b"POST /v1/rag/query HTTP/1.1\r\nHost: gateway\r\n" b"Content-Length: %d\r\n\r\n" % BIG
        )
        response = read_response(sock)  # answered from the headers alone
    assert response.startswith(b"HTTP/1.1 413 "), response[:200]
    assert b"AI_SUITE_MAX_BODY_BYTES" in response
    assert rss() - before < 20 * MiB


def service_reading_bodies(limit: int) -> tuple[FastAPI, list[int]]:
    parts = build_service_app("svc", limits=RequestLimits(max_body_bytes=limit))
    install_error_handlers(parts.app)
    sizes: list[int] = []

    @parts.app.post("/upload")
    async def upload(request: Request) -> dict:
        body = await request.body()
        sizes.append(len(body))
        return {"size": len(body)}

    return parts.app, sizes


def test_a_300_mb_chunked_body_is_cut_off_at_the_limit() -> None:
    app, sizes = service_reading_bodies(4 * MiB)
    before = rss()
    with serve_in_thread(app) as base, connect(base) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = send_body(sock, BIG, chunked=True)
        response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 413 "), response[:200]
    assert sent < BIG
    assert sizes == []
    assert rss() - before < 20 * MiB


def test_exactly_the_limit_passes_over_a_real_socket() -> None:
    app, sizes = service_reading_bodies(MiB)
    with serve_in_thread(app) as base:
        ok = httpx.post(f"{base}/upload", content=b"a" * MiB)
        over = httpx.post(f"{base}/upload", content=b"a" * (MiB + 1))
    assert ok.status_code == 200
    assert over.status_code == 413
    assert sizes == [MiB]


def test_headers_over_the_limit_are_refused() -> None:
    # services/core/server.py caps what httptools buffers of a header block that is not
    # complete yet: 431 and the connection closed. A block that arrives whole in one read
    # is parsed.
    app, _ = service_reading_bodies(MiB)
    with serve_in_thread(app, max_header_bytes=8192) as base:
        small = httpx.get(f"{base}/health", headers={"X-Pad": "p" * 4000})
        with connect(base) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: svc\r\nX-Pad: ")
            send_body(sock, 4 * MiB, chunked=False)  # never ends the header line
            big = read_response(sock)
        with connect(base) as sock:  # under the limit, in pieces: each read is incomplete
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: svc\r\nX-Pad: ")
            for _ in range(7):
                sock.sendall(b"p" * 1000)
            sock.sendall(b"\r\nConnection: close\r\n\r\n")
            split = read_response(sock)
    assert small.status_code == 200
    assert split.startswith(b"HTTP/1.1 200 "), split[:200]
    assert big.startswith(b"HTTP/1.1 431 "), big[:200]
    assert b"AI_SUITE_MAX_HEADER_BYTES" in big


def test_a_connection_trickling_its_headers_is_closed() -> None:
    # uvicorn has no header read timeout; services/core/server.py adds one.
    app, _ = service_reading_bodies(MiB)
    with serve_in_thread(app, header_timeout=0.2) as base, connect(base) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: svc\r\n")  # and never the end
        closed = read_response(sock)  # returns when the server closes; 30 s guard
    # Requests that do finish their headers, on one kept-alive connection, are served.
    with serve_in_thread(app, header_timeout=5) as base, httpx.Client(base_url=base) as client:
        statuses = [client.get("/health").status_code for _ in range(3)]
    assert closed == b""
    assert statuses == [200, 200, 200]
