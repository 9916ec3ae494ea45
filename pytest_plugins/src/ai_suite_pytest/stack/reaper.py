"""A watchdog that outlives pytest: when the owner dies, it kills the stack.

Started detached (own session) by the process that starts a stack. It polls the
owner's pid; when the owner is gone without tearing the stack down (kill -9, a
crash, a cancelled CI job), it kills every recorded process group. It exits by
itself when the state file disappears (normal teardown).

Usage: ``python -m ai_suite_pytest.stack.reaper STATE_FILE``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ai_suite_pytest.stack.state import StackState

POLL_SECONDS = 0.25
READY_LINE = "watching"  # printed once at start: the starter waits for it


def watch(state_file: Path, poll: float = POLL_SECONDS) -> int:
    while True:
        state = StackState.load(state_file)
        if state is None:
            return 0  # torn down normally
        if not state.owner_alive():
            if not state.keep:
                state.kill_all()
                if state.compose_leftover:
                    state.save(state_file)  # Docker did not answer: the next sweep retries
                else:
                    state_file.unlink(missing_ok=True)
            return 0
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ai_suite_pytest.stack.reaper STATE_FILE", file=sys.stderr)
        return 2
    print(READY_LINE, flush=True)
    return watch(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
