"""Running a service app under uvicorn as a process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import h11
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from services.core.logging import configure_logging
from services.core.settings import CoreSettings
from services.core.settings_errors import exit_on_invalid_settings

S = TypeVar("S", bound=CoreSettings)
log = logging.getLogger("ai_suite.server")


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header read timeout, which uvicorn lacks: a connection
    whose request line and headers are not complete ``header_timeout`` seconds after it
    opened (or after the previous response) is closed, so a client trickling headers
    cannot hold a connection forever. Subclass it with ``header_timeout`` set."""

    header_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
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
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a request's headers are complete
            self._disarm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


def _h11_protocol(header_timeout: float) -> type[HeaderTimeoutH11Protocol]:
    return type(
        "ServiceH11Protocol", (HeaderTimeoutH11Protocol,), {"header_timeout": header_timeout}
    )


def serve_from_env(
    service: str,
    settings_factory: Callable[[], S],
    create_app: Callable[[S], FastAPI],
    port: Callable[[S], int],
) -> None:
    """The body of every ``python -m services.<name>``: settings from the environment,
    the app from its factory, served on the service's port. A bad variable stops it with
    one line naming it (``gateway: GATEWAY_PORT='abc' is not valid: ...``)."""
    with exit_on_invalid_settings(service):
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
        # h11 explicitly: its incomplete-event limit bounds the request line and headers
        # (400 beyond it); httptools, if it were installed, would not apply the setting.
        http=_h11_protocol(header_timeout),
        h11_max_incomplete_event_size=max_header_bytes,
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
