"""The platform's services as ``ai-suite up`` starts them.

One list, so ``up`` and ``status`` agree on names, ports and probes. A new
service is one more row in :func:`platform_services`.
"""

from __future__ import annotations

import sys

from services.cli.settings import SupervisorSettings
from services.core.settings import CoreSettings
from services.core.supervisor import RestartPolicy, ServiceSpec


def restart_policy(settings: SupervisorSettings) -> RestartPolicy:
    """Every service's restart policy under ``ai-suite up`` (AI_SUITE_RESTART_*)."""
    return RestartPolicy(
        on_failure=settings.restart_policy == "on-failure",
        max_restarts=settings.restart_limit,
        window=settings.restart_window,
        backoff_initial=settings.restart_backoff,
        backoff_max=settings.restart_backoff_max,
    )


def check_platform_settings() -> None:
    """Build every service's settings as its process will, so that a bad variable stops
    ``ai-suite up`` with one line (InvalidSettings) before anything starts or is created,
    rather than as a service that exits during start-up."""
    from services.cli.settings import SupervisorSettings
    from services.gateway.settings import GatewaySettings
    from services.mcp.settings import McpSettings
    from services.monitoring.settings import MonitoringSettings
    from services.rag.settings import RagSettings
    from services.security.settings import BackupSettings

    for settings_class in (
        GatewaySettings,
        McpSettings,
        RagSettings,
        MonitoringSettings,
        SupervisorSettings,
        BackupSettings,
    ):
        settings_class()


def platform_services(settings: CoreSettings) -> list[ServiceSpec]:
    env = {
        "AI_SUITE_DATA_DIR": str(settings.data_dir),
        "AI_SUITE_HOST": settings.host,
        "PYTHONUNBUFFERED": "1",
        # Every service gets every port so that each can find the others.
        "GATEWAY_PORT": str(settings.gateway_port),
        "MCP_PORT": str(settings.mcp_port),
        "RAG_PORT": str(settings.rag_port),
    }
    # (name, module run with ``python -m``, port). Started in this order; the gateway
    # last, so that it is ready only when everything it forwards to is.
    services = (
        ("rag", "services.rag", settings.rag_port),
        ("mcp", "services.mcp", settings.mcp_port),
        ("gateway", "services.gateway", settings.gateway_port),
    )
    return [
        ServiceSpec(
            name=name,
            argv=[sys.executable, "-m", module],
            host=settings.host,
            port=port,
            env=env,
            restart=restart_policy(SupervisorSettings()),
        )
        for name, module, port in services
    ]


def monitoring_services(settings: CoreSettings) -> tuple[list[ServiceSpec], str | None]:
    """Prometheus and Alertmanager with the platform's rendered configuration.

    Returns the specs, or none and the reason when a binary is missing: the
    platform runs without monitoring rather than not at all.
    """
    from services.monitoring.config import render_monitoring
    from services.monitoring.processes import MissingBinary, alertmanager_spec, prometheus_spec
    from services.monitoring.settings import MonitoringSettings

    monitoring = MonitoringSettings()
    try:
        rendered = render_monitoring(settings.data_dir / "monitoring" / "config", monitoring)
        return [
            prometheus_spec(monitoring, rendered),
            alertmanager_spec(monitoring, rendered),
        ], None
    except MissingBinary as exc:
        return [], str(exc)


def monitoring_installed() -> bool:
    from services.monitoring.processes import (
        ALERTMANAGER_BINARIES,
        PROMETHEUS_BINARIES,
        MissingBinary,
        find_binary,
    )

    try:
        find_binary(PROMETHEUS_BINARIES)
        find_binary(ALERTMANAGER_BINARIES)
    except MissingBinary:
        return False
    return True
