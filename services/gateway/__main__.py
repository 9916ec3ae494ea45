"""``python -m services.gateway``: run the gateway with settings from the environment."""

from services.core.server import serve
from services.gateway.app import SERVICE, create_app
from services.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    serve(
        create_app(settings),
        service=SERVICE,
        host=settings.host,
        port=settings.gateway_port,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
