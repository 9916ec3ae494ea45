"""Running a service app under uvicorn as a process."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from services.core.logging import configure_logging
from services.core.settings import CoreSettings

S = TypeVar("S", bound=CoreSettings)


def serve_from_env(
    service: str,
    settings_factory: Callable[[], S],
    create_app: Callable[[S], FastAPI],
    port: Callable[[S], int],
) -> None:
    """The body of every ``python -m services.<name>``: settings from the environment,
    the app from its factory, served on the service's port."""
    settings = settings_factory()
    serve(
        create_app(settings),
        service=service,
        host=settings.host,
        port=port(settings),
        log_level=settings.log_level,
        max_header_bytes=settings.max_header_bytes,
        keep_alive_timeout=settings.keep_alive_timeout,
    )


def uvicorn_config(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    max_header_bytes: int = 65_536,
    keep_alive_timeout: int = 5,
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
        # (431 beyond it); httptools, if it were installed, would not apply the setting.
        http="h11",
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
) -> None:
    configure_logging(service, log_level)
    config = uvicorn_config(
        app,
        host=host,
        port=port,
        max_header_bytes=max_header_bytes,
        keep_alive_timeout=keep_alive_timeout,
    )
    uvicorn.Server(config).run()
