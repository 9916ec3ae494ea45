"""The HTTP client of inference requests: one small interface, two implementations.

:class:`UpstreamPool` sends each inference request with ``post`` and reads the answer
through :class:`UpstreamAnswer` (status, headers, ``aread``, ``aiter_raw``, ``aclose``),
whatever the client:

* :class:`AiohttpInferenceClient`, what the gateway runs with: a bounded aiohttp pool
  per backend. Measured against httpx on this machine (docs/benchmarks.md, "Upstream
  HTTP clients"), its CPU cost per relayed request is 0.08-0.2 ms at 1-64 concurrent
  requests, httpx's 0.6-1.1 ms at 1-16 and about 5 ms at 64 (httpcore scans every
  pooled connection on every request, so its cost grows with the concurrency) and
  httpx2's 0.4-0.7 ms.
* :class:`HttpxInferenceClient`: an ``httpx.AsyncClient`` given to ``create_app``
  (tests route every upstream through one ASGI transport that way).

Failures are raised as httpx's exception classes, the one vocabulary of UpstreamPool's
retry, breaker and relay decisions: a connect timeout is ``httpx.ConnectTimeout``, a
refused connection ``httpx.ConnectError``, a connection the server dropped
``httpx.RemoteProtocolError``, a silent server ``httpx.ReadTimeout``, a full pool
``httpx.PoolTimeout``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import aiohttp
import httpx

from services.core.context import REQUEST_ID_HEADER, request_id_var


class UpstreamAnswer(Protocol):
    """An upstream response whose body has not been read yet (``httpx.Response`` is one)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def aread(self) -> bytes: ...

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class InferenceClient(Protocol):
    async def post(
        self, url: str, body: dict[str, Any], headers: Mapping[str, str]
    ) -> UpstreamAnswer: ...

    async def aclose(self) -> None: ...


class HttpxInferenceClient:
    """An ``httpx.AsyncClient`` as an inference client; closing it is its owner's job."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(
        self, url: str, body: dict[str, Any], headers: Mapping[str, str]
    ) -> UpstreamAnswer:
        request = self.client.build_request("POST", url, json=body, headers=dict(headers))
        return await self.client.send(request, stream=True)

    async def aclose(self) -> None:
        """Nothing: the client belongs to whoever passed it in."""


def _as_httpx_error(exc: BaseException) -> httpx.HTTPError:
    """The httpx exception that means what the aiohttp (or timeout) error ``exc`` means."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc) or "connect timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc))
    if isinstance(exc, TimeoutError):  # aiohttp.SocketTimeoutError among them
        return httpx.ReadTimeout(str(exc) or "no data from the server in time")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(str(exc) or "the server closed the connection")
    return httpx.TransportError(f"{type(exc).__name__}: {exc}")


_FAILURES = (aiohttp.ClientError, TimeoutError)


class _AiohttpAnswer:
    def __init__(self, response: aiohttp.ClientResponse, release_slot: Callable[[], None]):
        self._response = response
        self._release_slot: Callable[[], None] | None = release_slot
        self.status_code = response.status
        self.headers: Mapping[str, str] = response.headers

    async def aread(self) -> bytes:
        try:
            return await self._response.read()
        except _FAILURES as exc:
            raise _as_httpx_error(exc) from exc

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except _FAILURES as exc:
            raise _as_httpx_error(exc) from exc

    async def aclose(self) -> None:
        if self._release_slot is None:
            return
        release, self._release_slot = self._release_slot, None
        if self._response.content.at_eof():
            self._response.release()  # read to the end: the connection is reused
        else:
            self._response.close()  # a body left unread must not reach the next request
        release()


class AiohttpInferenceClient:
    """A bounded aiohttp pool for one backend.

    At most ``max_connections`` requests are in flight (a stream holds its slot until it
    is closed); a request that waits longer than ``pool_timeout`` for a slot gets
    ``httpx.PoolTimeout``. The session is opened on first use, inside the server's
    event loop.
    """

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        pool_timeout: float,
        max_connections: int,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.pool_timeout = pool_timeout
        self.max_connections = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                # No total limit: a stream lasts as long as the model generates. Each
                # read waits at most read_timeout (UPSTREAM_READ_TIMEOUT).
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout
                ),
            )
        return self._session

    async def post(
        self, url: str, body: dict[str, Any], headers: Mapping[str, str]
    ) -> UpstreamAnswer:
        try:
            async with asyncio.timeout(self.pool_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(
                f"all {self.max_connections} connections in use for {self.pool_timeout:g} s"
            ) from None
        sent = {**headers, "Content-Type": "application/json"}
        request_id = request_id_var.get()
        if request_id:
            sent.setdefault(REQUEST_ID_HEADER, request_id)
        try:
            response = await self._open().post(url, data=json.dumps(body).encode(), headers=sent)
        except BaseException as exc:
            self._slots.release()
            if isinstance(exc, _FAILURES):
                raise _as_httpx_error(exc) from exc
            raise
        return _AiohttpAnswer(response, self._slots.release)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
