"""Running a service app under uvicorn as a process."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from services.core.files import private_dir
from services.core.logging import configure_logging
from services.core.metrics import MULTIPROC_ENV
from services.core.settings import CoreSettings
from services.core.settings_errors import exit_on_invalid_settings

S = TypeVar("S", bound=CoreSettings)
EventLoop = Literal["asyncio", "uvloop"]
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

    Both limits come from the :class:`ServiceConfig` uvicorn hands to the protocol (a
    class importable by name, so that worker processes can be spawned with it)."""

    def __init__(self, config: ServiceConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout = config.header_timeout
        self.max_header_bytes = config.max_header_bytes
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


class ServiceConfig(uvicorn.Config):
    """uvicorn's settings plus the header limits :class:`LimitedHttpToolsProtocol` applies."""

    def __init__(
        self, app: ASGIApp | str, *, header_timeout: float, max_header_bytes: int, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes


def serve_from_env(
    service: str,
    settings_factory: Callable[[], S],
    create_app: Callable[[S], FastAPI],
    port: Callable[[S], int],
    *,
    workers: Callable[[S], int] | None = None,
    app_factory: str | None = None,
    loop: EventLoop = "asyncio",
) -> None:
    """The body of every ``python -m services.<name>``: settings from the environment,
    the app from its factory, served on the service's port. A bad variable stops it with
    one line naming it (``gateway: GATEWAY_PORT='abc' is not valid: ...``).

    A stateless service may run several worker processes (``workers``, e.g.
    GATEWAY_WORKERS): each builds its app with ``app_factory`` (``"module:function"``,
    importable by the spawned processes), and their metrics are kept in
    prometheus_client's multiprocess files so that ``/metrics`` sums them.
    """
    with exit_on_invalid_settings(service):
        settings = settings_factory()
    # Before create_app: it opens the database and may log (the audit recovery pass
    # names the calls a killed process left); those lines must be JSON like the rest.
    configure_logging(service, settings.log_level)
    count = workers(settings) if workers is not None else 1
    limits: dict[str, Any] = {
        "loop": loop,
        "max_header_bytes": settings.max_header_bytes,
        "keep_alive_timeout": settings.keep_alive_timeout,
        "header_timeout": settings.header_read_timeout,
    }
    if count > 1:
        if app_factory is None:
            raise ValueError(f"{service} has no app factory for worker processes")
        serve_workers(
            app_factory,
            count,
            metrics_dir=settings.data_dir / "metrics-multiproc",
            host=settings.host,
            port=port(settings),
            **limits,
        )
        return
    serve(
        create_app(settings),
        service=service,
        host=settings.host,
        port=port(settings),
        log_level=settings.log_level,
        **limits,
    )


def uvicorn_config(
    app: ASGIApp | str,
    *,
    host: str,
    port: int,
    max_header_bytes: int = 65_536,
    keep_alive_timeout: int = 5,
    header_timeout: float = 30.0,
    workers: int | None = None,
    loop: EventLoop = "asyncio",
) -> ServiceConfig:
    """uvicorn's settings for a service. The body's size, depth and read timeout are
    limited by :mod:`services.core.limits` (uvicorn has no body read timeout). ``app``
    given as ``"module:function"`` is a factory each worker process calls."""
    return ServiceConfig(
        app,
        factory=isinstance(app, str),
        workers=workers,
        host=host,
        port=port,
        log_config=None,  # keep our JSON handlers
        access_log=False,  # the request middleware logs each request once
        lifespan="on",
        timeout_graceful_shutdown=5,
        # httptools (uvicorn[standard]), in C, with the header limits h11 had added. uvloop
        # only where asked (the gateway): its subprocess spawning leaves the service's
        # descriptors open in the child, which the MCP command box must never see
        # (tests/integration/mcp/test_mcp_command_box.py caught it).
        loop=loop,
        http=LimitedHttpToolsProtocol,
        header_timeout=header_timeout,
        max_header_bytes=max_header_bytes,
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
    loop: EventLoop = "asyncio",
) -> None:
    configure_logging(service, log_level)
    config = uvicorn_config(
        app,
        host=host,
        port=port,
        max_header_bytes=max_header_bytes,
        keep_alive_timeout=keep_alive_timeout,
        header_timeout=header_timeout,
        loop=loop,
    )
    uvicorn.Server(config).run()


def serve_workers(
    app_factory: str,
    workers: int,
    *,
    metrics_dir: Path,
    host: str,
    port: int,
    max_header_bytes: int = 65_536,
    keep_alive_timeout: int = 5,
    header_timeout: float = 30.0,
    loop: EventLoop = "asyncio",
) -> None:
    """``workers`` processes accepting on one socket, each serving ``app_factory()``;
    uvicorn's supervisor restarts one that dies.

    prometheus_client's multiprocess mode: every process writes its samples to files in
    ``metrics_dir`` (emptied first: counts of an earlier run must not add up), and the
    ``/metrics`` of any worker sums them (services/core/metrics.py). The variable is set
    before the workers are spawned, so it is there when they import prometheus_client.
    """
    private_dir(metrics_dir)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    config = uvicorn_config(
        app_factory,
        host=host,
        port=port,
        max_header_bytes=max_header_bytes,
        keep_alive_timeout=keep_alive_timeout,
        header_timeout=header_timeout,
        workers=workers,
        loop=loop,
    )
    log.info("starting %d worker processes (metrics in %s)", workers, metrics_dir)
    Multiprocess(config, sockets=[config.bind_socket()]).run()
