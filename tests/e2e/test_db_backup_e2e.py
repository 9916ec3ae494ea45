"""Backups of a running platform as a user takes them: `ai-suite up` with scheduled backups,
`ai-suite db backup` while it runs, `db restore` refused while it runs, and
`db restore --stop-services` stopping it and restoring."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from services.security.db import Database
from services.security.rbac import AccessControl, AuthError
from tests.e2e.conftest import start_platform, wait_for_line


def authenticates(db_path: Path, key: str) -> bool:
    database = Database(db_path)
    try:
        AccessControl(database, CollectorRegistry()).authenticate(key)
        return True
    except AuthError:
        return False
    finally:
        database.close()


def test_backup_while_up_runs_then_restore_with_stop_services(
    tmp_path: Path, stub_inference: str
) -> None:
    platform = start_platform(
        tmp_path / "checkout",
        {
            "INFERENCE_URL": stub_inference,
            "AI_SUITE_BACKUP_INTERVAL_HOURS": "0.0005",  # 1.8 s
            "AI_SUITE_BACKUP_KEEP": "2",
        },
    )
    data_dir = platform.cwd / "data"
    try:
        wait_for_line(platform.process, "backup: ", timeout=120)
        made = platform.cli("db", "backup")
        assert made.returncode == 0, made.stderr
        saved = Path(made.stdout.strip())
        # A key made after the backup: the restore must take it away.
        later = platform.cli("keys", "create", "--user", "later", "--role", "viewer")
        assert later.returncode == 0, later.stderr
        later_key = later.stdout.strip()
        models = httpx.get(
            f"{platform.gateway_url}/v1/models",
            headers={"Authorization": f"Bearer {later_key}"},
            timeout=30,
            trust_env=False,
        )
        assert models.status_code == 200, models.text

        refused = platform.cli("db", "restore", str(saved))
        assert refused.returncode == 1
        assert f"ai-suite up, pid {platform.process.pid}" in refused.stderr
        assert platform.process.poll() is None

        restored = platform.cli("db", "restore", "--stop-services", str(saved))
        assert restored.returncode == 0, restored.stderr
        assert f"stopping pid {platform.process.pid}" in restored.stderr
        _, up_stderr = platform.process.communicate(timeout=60)
    finally:
        if platform.process.poll() is None:
            platform.process.send_signal(signal.SIGTERM)
            platform.process.communicate(timeout=60)

    assert "all services stopped" in up_stderr
    assert authenticates(data_dir / "security.db", platform.admin_key)
    assert not authenticates(data_dir / "security.db", later_key)
    assert list(data_dir.glob("security.db.replaced-*"))
    scheduled = list((data_dir / "backups" / "scheduled").glob("security-*.db"))
    assert 1 <= len(scheduled) <= 2
    assert saved.is_file()
