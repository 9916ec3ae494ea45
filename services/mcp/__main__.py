"""``python -m services.mcp``: run the MCP tool server with settings from the environment."""

from services.core.server import serve_from_env
from services.mcp.app import SERVICE, create_app
from services.mcp.settings import McpSettings


def main() -> None:
    serve_from_env(SERVICE, McpSettings, create_app, lambda settings: settings.mcp_port)


if __name__ == "__main__":
    main()
