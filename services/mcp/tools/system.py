"""``system_info``: versions, uptime, workspace roots and configured services."""

from __future__ import annotations

import functools
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from services.mcp.tools.base import ToolArgs, ToolContext, ToolSpec


class SystemInfoArgs(ToolArgs):
    pass


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


@functools.cache
def _versions() -> dict[str, str | None]:
    # Looking up package metadata scans site-packages; versions do not change while running.
    return {
        "local-ai-suite": _version("local-ai-suite"),
        "python": sys.version.split()[0],
        "mcp": _version("mcp"),
        "platform": platform.platform(),
    }


async def system_info(ctx: ToolContext, _: SystemInfoArgs) -> dict[str, Any]:
    settings = ctx.settings
    return {
        "service": "mcp",
        "versions": _versions(),
        "uptime_seconds": round(time.monotonic() - ctx.service_started, 1),
        "workspace_roots": [str(root) for root in ctx.workspace.roots],
        "command_allowlist": sorted(settings.command_allowlist),
        "services": {"gateway": settings.gateway_url, "rag": settings.rag_url},
        "limits": {
            "max_read_bytes": settings.max_read_bytes,
            "max_write_bytes": settings.max_write_bytes,
            "max_output_bytes": settings.max_output_bytes,
            "command_timeout_seconds": settings.command_timeout,
            "tool_timeout_seconds": settings.tool_timeout,
            "rate_limit_per_minute": settings.rate_limit_per_minute,
            "max_concurrent_per_key": settings.max_concurrent_per_key,
        },
        "caller": {"user": ctx.principal.user, "role": ctx.principal.role},
    }


TOOLS = (
    ToolSpec(
        "system_info",
        "Versions, uptime, workspace roots, limits and the platform's service URLs.",
        SystemInfoArgs,
        system_info,
        lambda _: {},
    ),
)
