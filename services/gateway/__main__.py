"""``python -m services.gateway``: run the gateway with settings from the environment."""

from fastapi import FastAPI

from services.core.logging import configure_logging
from services.core.server import serve_from_env
from services.gateway.app import SERVICE, create_app
from services.gateway.settings import GatewaySettings


def app_from_env() -> FastAPI:
    """The app of one worker process (GATEWAY_WORKERS > 1): its own settings, logging and
    connections, built in that process."""
    settings = GatewaySettings()
    configure_logging(SERVICE, settings.log_level)
    return create_app(settings)


def main() -> None:
    serve_from_env(
        SERVICE,
        GatewaySettings,
        create_app,
        lambda settings: settings.gateway_port,
        workers=lambda settings: settings.workers,
        app_factory="services.gateway.__main__:app_from_env",
        # The gateway runs no subprocesses (services/core/server.py on uvloop and them).
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
