"""The tool catalogue: one module per tool family, collected by :func:`build_tools`."""

from __future__ import annotations

from services.mcp.tools.base import ToolContext, ToolError, ToolSpec
from services.mcp.tools.catalog import build_tools

__all__ = ["ToolContext", "ToolError", "ToolSpec", "build_tools"]
