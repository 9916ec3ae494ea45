"""Outgoing HTTP clients that forward the current request id."""

from __future__ import annotations

import functools
import ssl

import httpx

from services.core.context import REQUEST_ID_HEADER, request_id_var


async def _forward_request_id(request: httpx.Request) -> None:
    request_id = request_id_var.get()
    if request_id and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id


def add_request_id_forwarding(client: httpx.AsyncClient) -> httpx.AsyncClient:
    hooks = client.event_hooks
    if _forward_request_id not in hooks["request"]:
        client.event_hooks = {**hooks, "request": [*hooks["request"], _forward_request_id]}
    return client


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """httpx's default TLS verification (certifi's CA bundle, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``), built once per process and shared by every client.

    httpx otherwise loads the CA bundle for each new client, about 25 ms each; a context
    is safe to share, and it holds no per-client state.
    """
    return httpx.create_ssl_context()


def make_async_client(
    *,
    connect_timeout: float = 2.0,
    read_timeout: float = 300.0,
    pool_timeout: float | None = None,
    **kwargs: object,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with a short connect timeout and request id forwarding.

    The connect timeout is short so that a backend that is down is reported in
    seconds; the read timeout is long because local models can be slow. The pool timeout
    (waiting for a free connection when ``limits`` caps them) defaults to the read timeout.
    """
    timeout = httpx.Timeout(
        read_timeout,
        connect=connect_timeout,
        pool=read_timeout if pool_timeout is None else pool_timeout,
    )
    kwargs.setdefault("verify", default_ssl_context())
    client = httpx.AsyncClient(timeout=timeout, **kwargs)  # type: ignore[arg-type]
    return add_request_id_forwarding(client)
