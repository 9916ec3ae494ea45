"""The platform's services as ``ai-suite up`` starts them.

One list, so ``up`` and ``status`` agree on names, ports and probes. Later
services (MCP server, RAG, Prometheus, Alertmanager) are added here.
"""

from __future__ import annotations

import sys

from services.cli.supervisor import ServiceSpec
from services.core.settings import CoreSettings


def platform_services(settings: CoreSettings) -> list[ServiceSpec]:
    env = {
        "AI_SUITE_DATA_DIR": str(settings.data_dir),
        "AI_SUITE_HOST": settings.host,
        "PYTHONUNBUFFERED": "1",
    }
    ports = {
        "GATEWAY_PORT": str(settings.gateway_port),
        "MCP_PORT": str(settings.mcp_port),
        "RAG_PORT": str(settings.rag_port),
    }
    env = {**env, **ports}
    # Started in this order; the gateway last, so that it is ready only when
    # everything it forwards to is.
    return [
        ServiceSpec(
            name="rag",
            argv=[sys.executable, "-m", "services.rag"],
            host=settings.host,
            port=settings.rag_port,
            env=env,
        ),
        ServiceSpec(
            name="mcp",
            argv=[sys.executable, "-m", "services.mcp"],
            host=settings.host,
            port=settings.mcp_port,
            env=env,
        ),
        ServiceSpec(
            name="gateway",
            argv=[sys.executable, "-m", "services.gateway"],
            host=settings.host,
            port=settings.gateway_port,
            env=env,
        ),
    ]
