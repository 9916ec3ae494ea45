"""Run an ASGI app on a real loopback socket in a background thread (test helper)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from services.core.server import uvicorn_config


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    *,
    port: int | None = None,
    max_header_bytes: int = 65_536,
    header_timeout: float = 30.0,
) -> Iterator[str]:
    """Yield the base URL of ``app`` served by uvicorn until the block ends, with the
    uvicorn settings the services run with (services/core/server.py)."""
    port = port or free_port()
    config = uvicorn_config(
        app,
        host="127.0.0.1",
        port=port,
        max_header_bytes=max_header_bytes,
        header_timeout=header_timeout,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"test server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
