"""All tools by name; every one must have a row in the policy's sensitivity table."""

from __future__ import annotations

from services.mcp.tools import command, files, git, rag, system
from services.mcp.tools.base import ToolSpec
from services.security.policy import TOOL_SENSITIVITY


def build_tools() -> dict[str, ToolSpec]:
    specs = [*files.TOOLS, *git.TOOLS, *command.TOOLS, *rag.TOOLS, *system.TOOLS]
    tools = {spec.name: spec for spec in specs}
    if set(tools) != set(TOOL_SENSITIVITY):
        # Two tables disagreeing is the predecessor's bug; refuse to start instead.
        raise RuntimeError(
            "tool catalogue and services/security/policy.py disagree: "
            f"only in code {sorted(set(tools) - set(TOOL_SENSITIVITY))}, "
            f"only in policy {sorted(set(TOOL_SENSITIVITY) - set(tools))}"
        )
    return tools
