"""``python -m services.gateway``: run the gateway with settings from the environment."""

from services.core.server import serve_from_env
from services.gateway.app import SERVICE, create_app
from services.gateway.settings import GatewaySettings


def main() -> None:
    serve_from_env(SERVICE, GatewaySettings, create_app, lambda settings: settings.gateway_port)


if __name__ == "__main__":
    main()
