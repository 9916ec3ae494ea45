"""``ai-suite audit --follow`` in a subprocess: rows committed by another process appear, in
order, once each, filtered; the rows before it started are listed first."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.security.audit import AuditEntry, AuditLog
from services.security.db import Database
from tests.support.keys import migrated_database

REPO = Path(__file__).resolve().parents[3]


def test_follow_prints_new_rows_of_the_filter(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    db = Database(migrated_database(data_dir / "security.db"))
    log = AuditLog(db, CollectorRegistry())
    log.write(AuditEntry(action="chat:create", outcome="ok", user="alice", resource="before"))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli.main",
            "audit",
            "--follow",
            "--json",
            "--user",
            "alice",
        ],
        env={**os.environ, "AI_SUITE_DATA_DIR": str(data_dir)},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump)
    reader.start()
    try:
        assert json.loads(lines.get(timeout=60))["resource"] == "before"
        for i in range(5):
            log.write(AuditEntry(action="chat:create", outcome="ok", user="bob"))
            log.write(
                AuditEntry(action="chat:create", outcome="ok", user="alice", resource=f"r{i}")
            )
        got = [json.loads(lines.get(timeout=60))["resource"] for _ in range(5)]
        assert got == [f"r{i}" for i in range(5)]
        assert lines.empty()
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
        db.close()
