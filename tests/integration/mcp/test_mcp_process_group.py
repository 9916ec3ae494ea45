"""A command that times out is killed with everything it spawned (its process group)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from services.mcp.process import clean_env, run_process
from tests.support.processes import assert_all_gone

SCRIPT = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "open('child.pid', 'w').write(str(child.pid))\n"
    "time.sleep(60)\n"
)


async def test_timeout_kills_the_grandchildren_too(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = await run_process(
            [sys.executable, "-c", SCRIPT],
            cwd_fd=fd,
            env=clean_env(tmp_path),
            # long enough for the script to start its child even on a loaded machine
            time_limit=2.0,
            max_output=1024,
        )
    finally:
        os.close(fd)
    assert result.timed_out
    assert result.exit_code is None
    assert_all_gone([int((tmp_path / "child.pid").read_text())])
