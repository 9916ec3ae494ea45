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
    return [
        ServiceSpec(
            name="gateway",
            argv=[sys.executable, "-m", "services.gateway"],
            host=settings.host,
            port=settings.gateway_port,
            env={**env, "GATEWAY_PORT": str(settings.gateway_port)},
        ),
    ]
