"""Running a service app under uvicorn as a process."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from services.core.logging import configure_logging


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
