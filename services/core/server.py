"""Running a service app under uvicorn as a process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.core.logging import configure_logging
from services.core.settings import CoreSettings

S = TypeVar("S", bound=CoreSettings)
log = logging.getLogger("ai_suite.server")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (llhttp, in C) with the two header limits it lacks.

    * Header size: llhttp buffers a header block of any size. A block still incomplete
      once more than ``max_header_bytes`` of it have arrived is answered 431 and the
      connection closed, so memory stays bounded (by the limit plus one socket read).
      A block that arrives whole in one read is parsed, as h11's limit on incomplete
      events did before.
    * Header read timeout: a connection whose request line and headers are not complete
      ``header_timeout`` seconds after it opened (or after the previous response) is
      closed, so a client trickling headers cannot hold a connection forever.

    Subclass it with both set (:func:`_protocol`)."""

    header_timeout: float = 30.0
    max_header_bytes: int = 65_536

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True
        self._header_bytes = 0

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self.transport.is_closing():
            log.info(
                "closing a connection whose request headers were not complete after %g s "
                "(AI_SUITE_HEADER_READ_TIMEOUT)",
                self.header_timeout,
            )
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if (
            self._awaiting_headers
            and self._header_bytes > self.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._refuse_headers()

    def _refuse_headers(self) -> None:
        message = (
            f"request headers over {self.max_header_bytes} bytes: send smaller headers "
            "(the server's limit is AI_SUITE_MAX_HEADER_BYTES)"
        )
        log.info("refused a request: %s", message)
        body = message.encode("ascii")
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        self.transport.close()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._header_bytes = 0
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers = True  # a pipelined request may follow

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


def _protocol(header_timeout: float, max_header_bytes: int) -> type[LimitedHttpToolsProtocol]:
    return type(
        "ServiceHttpProtocol",
        (LimitedHttpToolsProtocol,),
        {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes},
    )


def serve_from_env(
    service: str,
    settings_factory: Callable[[], S],
    create_app: Callable[[S], FastAPI],
    port: Callable[[S], int],
) -> None:
    """The body of every ``python -m services.<name>``: settings from the environment,
    the app from its factory, served on the service's port."""
    settings = settings_factory()
    # Before create_app: it opens the database and may log (the audit recovery pass
    # names the calls a killed process left); those lines must be JSON like the rest.
    configure_logging(service, settings.log_level)
    serve(
        create_app(settings),
        service=service,
        host=settings.host,
        port=port(settings),
        log_level=settings.log_level,
        max_header_bytes=settings.max_header_bytes,
        keep_alive_timeout=settings.keep_alive_timeout,
        header_timeout=settings.header_read_timeout,
    )


def uvicorn_config(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    max_header_bytes: int = 65_536,
    keep_alive_timeout: int = 5,
    header_timeout: float = 30.0,
) -> uvicorn.Config:
    """uvicorn's settings for a service. The body's size, depth and read timeout are
    limited by :mod:`services.core.limits` (uvicorn has no body read timeout)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # keep our JSON handlers
        access_log=False,  # the request middleware logs each request once
        lifespan="on",
        timeout_graceful_shutdown=5,
        # uvloop and httptools (uvicorn[standard]): +45% requests per second on a light
        # route against asyncio and h11 (docs/benchmarks.md); the header limits h11 had
        # are added to the httptools protocol.
        loop="uvloop",
        http=_protocol(header_timeout, max_header_bytes),
        timeout_keep_alive=keep_alive_timeout,
    )


def serve(
    app: FastAPI,
    *,
    service: str,
    host: str,
    port: int,
    log_level: str = "INFO",
    max_header_bytes: int = 65_536,
    keep_alive_timeout: int = 5,
    header_timeout: float = 30.0,
) -> None:
    configure_logging(service, log_level)
    config = uvicorn_config(
        app,
        host=host,
        port=port,
        max_header_bytes=max_header_bytes,
        keep_alive_timeout=keep_alive_timeout,
        header_timeout=header_timeout,
    )
    uvicorn.Server(config).run()
