"""Running a service app under uvicorn as a process."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

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
    )


def serve(app: FastAPI, *, service: str, host: str, port: int, log_level: str = "INFO") -> None:
    configure_logging(service, log_level)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # keep our JSON handlers
        access_log=False,  # the request middleware logs each request once
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()
