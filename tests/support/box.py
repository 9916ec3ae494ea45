"""For tests that run a command through ``run_command``: it needs the box (bubblewrap).

Without one, ``run_command`` is refused (503 ``sandbox_unavailable``) by design, so these
tests skip with that reason instead of failing; `make system-deps` installs it and CI
has it. The refusal itself is tested in tests/integration/mcp/test_mcp_command_box.py.
"""

from __future__ import annotations

import pytest

from services.mcp.box import Box
from services.mcp.settings import McpSettings

# Probed once per process (the result is cached by services.mcp.box).
BOX_REASON = Box(McpSettings()).unavailable_reason()
needs_box = pytest.mark.skipif(BOX_REASON is not None, reason=f"no sandbox here: {BOX_REASON}")
