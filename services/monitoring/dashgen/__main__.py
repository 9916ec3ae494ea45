"""``python -m services.monitoring.dashgen [--check] [--out DIR]`` (``make dashboards``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.monitoring.dashgen.links import RUNBOOK_BASE_ENV
from services.monitoring.dashgen.render import DASHBOARD_DIR, REGENERATE, drift, write_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.monitoring.dashgen",
        description=f"Write the Grafana dashboards. Runbook links start with ${RUNBOOK_BASE_ENV}.",
    )
    parser.add_argument("--out", type=Path, default=DASHBOARD_DIR, help="directory to write")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file would change"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = drift(args.out)
        for problem in problems:
            print(f"{args.out / problem.file}: {problem.reason}; run `{REGENERATE}`")
        return 1 if problems else 0
    for path in write_all(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
