"""The audit writer after fork(): a child never waits for a writer thread it did not inherit."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.security.audit import AuditEntry, AuditLog
from services.security.db import Database
from tests.support.keys import migrated_database


def test_a_forked_child_writes_with_its_own_writer(tmp_path: Path) -> None:
    db = Database(migrated_database(tmp_path / "security.db"))
    audit = AuditLog(db, CollectorRegistry())
    try:
        audit.write(AuditEntry("parent", "ok"))  # the parent's writer thread is running
        pid = os.fork()
        if pid == 0:  # the child: a write must start a writer of its own, not hang
            code = 1
            signal.alarm(20)  # a child that hangs dies, and the test fails instead of hanging
            try:
                audit.write(AuditEntry("child", "ok"))
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        actions = [r["action"] for r in db.query("SELECT action FROM audit_log ORDER BY id")]
        assert actions == ["parent", "child"]
    finally:
        db.close()
