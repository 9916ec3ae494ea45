"""Per-test reset of the security database: recreate from migrations vs. each mechanism.

Run: .venv/bin/python benchmarks/bench_sqlite_reset.py [--runs 200]
Prints a markdown table (median and p95 per reset, in milliseconds). "Against a
second process" means another process holds an open WAL connection on the file
and reads from it in a loop the whole time, as a running service does.
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ai_suite_pytest.sqlite_reset import SqliteReset, make_builder, savepoint  # noqa: E402

from services.security.audit import AuditEntry, AuditLog  # noqa: E402
from services.security.db import Database  # noqa: E402
from services.security.migrations import migrate  # noqa: E402

HOLDER = textwrap.dedent("""
    import sqlite3, sys, threading
    from services.security.db import Database
    db = Database(sys.argv[1])
    done = threading.Event()
    errors = []
    def commands():
        for line in sys.stdin:
            count = db.query_one("SELECT COUNT(*) FROM users")[0]
            print(f"{count} {len(errors)}", flush=True)
        done.set()
    threading.Thread(target=commands, daemon=True).start()
    reader = Database(sys.argv[1])  # a second thread-local connection, reading in a loop
    while not done.wait(0.001):
        try:
            reader.query_one("SELECT COUNT(*) FROM audit_log")
        except sqlite3.Error as exc:  # what a service's request would have hit
            errors.append(str(exc))
    db.close()
    reader.close()
    """)


def audit_rows(db: Database) -> None:
    """The anchors' variant: seed data plus 2,000 audit rows (about 540 KiB)."""
    log = AuditLog(db, __import__("prometheus_client").CollectorRegistry())
    for i in range(2000):
        log.write(AuditEntry(action="chat:create", outcome="allowed", details={"i": i}))


def dirty(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    conn.execute(
        "INSERT INTO users (name, role_id, created_at) VALUES (?, 1, 'now')",
        (f"u{time.perf_counter_ns()}",),
    )
    conn.close()


def timed(runs: int, before: Callable[[], None], action: Callable[[], None]) -> list[float]:
    samples = []
    for _ in range(runs):
        before()
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def new_file(path: Path, seed: Callable[[Database], None] | None) -> Callable[[], None]:
    """What tests do without the plugin: a new file, migrations and seed (no one connected)."""
    counter = iter(range(10**9))

    def run() -> None:
        db = Database(path.with_name(f"fresh-{next(counter)}.db"))
        migrate(db)
        if seed:
            seed(db)
        db.close()

    return run


def recreate(path: Path, seed: Callable[[Database], None] | None) -> Callable[[], None]:
    """Drop every table through a connection (safe under other connections), migrate again."""

    def run() -> None:
        db = Database(path)
        conn = db.connection()
        conn.execute("PRAGMA foreign_keys = OFF")
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%'"
            )
        ]
        with db.transaction() as tx:
            for table in tables:
                tx.execute(f'DROP TABLE "{table}"')
            tx.execute("DELETE FROM sqlite_sequence")
        migrate(db)
        if seed:
            seed(db)
        db.close()

    return run


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def bench(seed: str, runs: int, workdir: Path) -> list[tuple[str, str, float, float]]:
    seeds = {"audit2000": audit_rows}
    service = SqliteReset(make_builder(migrate, Database, seeds), workdir / seed)
    template = service.template(seed)
    rows: list[tuple[str, str, float, float]] = []
    live = service.fresh_worker_db(seed)
    seed_fn = seeds.get(seed)
    rows.append(
        (
            "new file + migrations (no plugin)",
            "in-process",
            *stats(timed(runs, lambda: None, new_file(workdir / seed / "new" / "x.db", seed_fn))),
        )
    )

    rows.append(
        (
            "recreate from migrations",
            "in-process",
            *stats(timed(runs, lambda: dirty(live), recreate(live, seed_fn))),
        )
    )
    service.fresh_worker_db(seed)
    rows.append(
        (
            "online backup API (this plugin)",
            "in-process",
            *stats(timed(runs, lambda: dirty(live), lambda: service.fresh_worker_db(seed))),
        )
    )

    conn = template.connect()

    def in_savepoint() -> None:
        with savepoint(conn):
            conn.execute("INSERT INTO users (name, role_id, created_at) VALUES ('x', 1, 'now')")

    # Timed: the whole savepoint cycle, including the write it undoes.
    rows.append(
        ("savepoint + rollback", "in-process", *stats(timed(runs, lambda: None, in_savepoint)))
    )
    conn.close()

    def deserialize() -> None:
        template.connect().close()

    rows.append(
        (
            "deserialize template bytes",
            "in-process (memory)",
            *stats(timed(runs, lambda: None, deserialize)),
        )
    )

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(live)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert holder.stdin
    assert holder.stdout

    def holder_state() -> tuple[int, int]:
        """(users the holder sees, read errors it has hit so far)."""
        holder.stdin.write("count\n")
        holder.stdin.flush()
        users, errors = holder.stdout.readline().split()
        return int(users), int(errors)

    try:
        holder_state()  # the holder is up and has its connections open
        where = "2nd process holds WAL connection"
        samples = timed(runs, lambda: dirty(live), recreate(live, seed_fn))
        _, recreate_errors = holder_state()
        rows.append(
            (f"recreate from migrations ({recreate_errors} reader errors)", where, *stats(samples))
        )
        samples = timed(runs, lambda: dirty(live), lambda: service.fresh_worker_db(seed))
        _, total = holder_state()
        name = f"online backup API (this plugin) ({total - recreate_errors} reader errors)"
        rows.append((name, where, *stats(samples)))
        # The common case: the test wrote nothing, so data_version has not moved.
        samples = timed(runs, lambda: None, lambda: service.fresh_worker_db(seed))
        rows.append(("this plugin, nothing written since the last reset", where, *stats(samples)))
        dirty(live)
        assert holder_state()[0] >= 1
        service.fresh_worker_db(seed)
        seen, _ = holder_state()  # correctness: the other process sees the reset at once
        expected = sqlite3.connect(":memory:")
        expected.deserialize(template.image)
        want = expected.execute("SELECT COUNT(*) FROM users").fetchone()[0]
        expected.close()
        assert seen == want, f"holder saw {seen} users after reset, expected {want}"
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    service.close()
    return [(f"{seed}: {name}", where, med, p95) for name, where, med, p95 in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.machine()}, runs per row: {args.runs}\n"
    )
    print("| template: mechanism | where | median ms | p95 ms | speed-up vs drop + migrate |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in ("default", "audit2000"):
            rows = bench(seed, args.runs, Path(tmp))
            base = {where: med for name, where, med, _ in rows if "recreate" in name}
            for name, where, med, p95 in rows:
                ref = base.get(where) or base.get("in-process")
                baseline = "recreate" in name or "no plugin" in name
                speedup = f"{ref / med:.1f}x" if ref and not baseline else ""
                print(f"| {name} | {where} | {med:.3f} | {p95:.3f} | {speedup} |")


if __name__ == "__main__":
    main()
