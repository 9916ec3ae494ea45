"""``python -m services.mcp``: run the MCP tool server with settings from the environment."""

from services.core.server import serve
from services.mcp.app import SERVICE, create_app
from services.mcp.settings import McpSettings


def main() -> None:
    settings = McpSettings()
    serve(
        create_app(settings),
        service=SERVICE,
        host=settings.host,
        port=settings.mcp_port,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
