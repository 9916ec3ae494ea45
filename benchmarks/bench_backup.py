"""Online backup of the security database while a writer commits audit rows.

Run: .venv/bin/python benchmarks/bench_backup.py [--rows 166000]

Fills a migrated security database with ``--rows`` audit rows (issue 15 saw 166,000 rows,
40 MB, in half an hour of load), then takes ``ai-suite db backup``'s backup (SQLite's
backup API in one step + ``integrity_check`` of the copy) while one thread commits an
audit row per transaction. Prints the database size, the backup's time, how many writes
committed during it and the slowest of them (a backup that blocked the writer would show
here), and the time of ``verify`` alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.security.backup import backup, verify
from services.security.db import Database
from services.security.migrations import migrate, utcnow


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=166_000)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    db = Database(directory / "security.db")
    migrate(db)
    details = json.dumps({"pad": "y" * 200})
    with db.transaction() as conn:
        conn.executemany(
            "INSERT INTO audit_log (ts, action, outcome, details) VALUES (?, 'bench', 'ok', ?)",
            [(utcnow(), details) for _ in range(args.rows)],
        )
    size = (directory / "security.db").stat().st_size
    stop = threading.Event()
    writes: list[float] = []
    during = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            with db.transaction() as conn:
                conn.execute(
                    "INSERT INTO audit_log (ts, action, outcome) VALUES (?, 'w', 'ok')",
                    (utcnow(),),
                )
            if during.is_set():
                writes.append(time.perf_counter() - start)

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.5)
    during.set()
    start = time.perf_counter()
    made = backup(directory / "security.db", directory / "backup.db")
    took = time.perf_counter() - start
    during.clear()
    stop.set()
    thread.join()
    start = time.perf_counter()
    verify(made.path)
    verify_took = time.perf_counter() - start
    db.close()
    print(f"database {size / 1e6:.1f} MB, {made.audit_rows} audit rows in the backup")
    print(f"backup + integrity_check: {took:.2f} s")
    print(
        f"writes committed during it: {len(writes)}, slowest"
        f" {max(writes, default=0) * 1000:.1f} ms"
    )
    print(f"verify alone: {verify_took:.2f} s")


if __name__ == "__main__":
    main()
