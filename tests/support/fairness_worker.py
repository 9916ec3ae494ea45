"""A process that uses the fairness limiter (services/security/fairness.py) the way a
service process does, for tests/integration/test_fairness_processes.py.

    python -m tests.support.fairness_worker DB count KEY RATE CONCURRENT TRIES GO_FILE
        waits for GO_FILE, then tries TRIES calls (hold=False), prints how many passed
    python -m tests.support.fairness_worker DB hold KEY RATE CONCURRENT TRIES GO_FILE
        waits for GO_FILE, then tries TRIES leases and keeps the ones it gets; prints how
        many it holds, then sleeps until killed

The clock is frozen in ``count`` mode, so no token comes back while the processes run:
the total that passes is exactly the limit, however slow the machine is.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from services.security.fairness import Fairness, FairnessLimits, LimitExceeded, open_fairness_db

FROZEN = 1_000_000.0


def main(argv: list[str]) -> int:
    db_path, mode, key, rate, concurrent, tries, go = argv
    db = open_fairness_db(Path(db_path))
    limits = FairnessLimits(int(rate), int(concurrent), "RATE", "CONCURRENT")
    clock = (lambda: FROZEN) if mode == "count" else time.time
    fairness = Fairness(db, "svc", limits, clock=clock, lease_ttl=3600)
    print(json.dumps({"ready": True}), flush=True)
    while not Path(go).exists():
        time.sleep(0.001)
    passed = 0
    for _ in range(int(tries)):
        try:
            fairness.admit_sync(key, hold=mode == "hold")
            passed += 1
        except LimitExceeded:
            pass
    print(json.dumps({"passed": passed}), flush=True)
    if mode == "hold":
        while True:  # hold the leases until killed
            time.sleep(60)
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
