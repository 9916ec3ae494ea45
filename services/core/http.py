"""Outgoing HTTP clients that forward the current request id."""

from __future__ import annotations

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


def make_async_client(
    *, connect_timeout: float = 2.0, read_timeout: float = 300.0, **kwargs: object
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with a short connect timeout and request id forwarding.

    The connect timeout is short so that a backend that is down is reported in
    seconds; the read timeout is long because local models can be slow.
    """
    timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
    client = httpx.AsyncClient(timeout=timeout, **kwargs)  # type: ignore[arg-type]
    return add_request_id_forwarding(client)
