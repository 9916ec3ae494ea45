"""A read-only archive directory, for real (a read-only bind mount made by bubblewrap, which
root cannot write through either): the gateway keeps the rows and counts the failures, and
``ai-suite audit archive`` fails saying why and keeps them too."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from services.security.audit import AuditEntry, AuditLog
from services.security.db import Database
from tests.support.keys import migrated_database
from tests.support.live import free_port
from tests.support.processes import wait_until

REPO = Path(__file__).resolve().parents[2]


def _bwrap_read_only(directory: Path) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("bubblewrap (bwrap) is not installed: `make system-deps`")
    # --die-with-parent: stopping bwrap (the process the test holds) must stop the service
    # inside it too, or every run leaves a gateway behind.
    argv = [
        bwrap,
        "--die-with-parent",
        "--dev-bind",
        "/",
        "/",
        "--ro-bind",
        str(directory),
        str(directory),
    ]
    probe = subprocess.run([*argv, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"bwrap cannot make a bind mount here: {probe.stderr.strip()}")
    return argv


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    db = Database(migrated_database(data / "security.db"))
    try:
        log = AuditLog(db, CollectorRegistry())
        for _ in range(7):
            log.write(AuditEntry(action="chat:create", outcome="ok", user="alice"))
        stamp = (datetime.now(UTC) - timedelta(days=100)).isoformat(timespec="microseconds")
        with db.transaction() as conn:
            conn.execute("UPDATE audit_log SET ts = ?", (stamp,))
    finally:
        db.close()
    (data / "audit-archive").mkdir(mode=0o700)
    return data


def _rows(data_dir: Path) -> int:
    db = Database(data_dir / "security.db")
    try:
        return int(db.query_one("SELECT COUNT(*) FROM audit_log WHERE user_name='alice'")[0])
    finally:
        db.close()


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AI_SUITE_", "AUDIT_"))}
    return {**keep, "AI_SUITE_DATA_DIR": str(data_dir), "AUDIT_RETENTION_DAYS": "30", **extra}


@pytest.fixture
def gateway(data_dir: Path) -> Iterator[str]:
    port = free_port()
    env = _env(
        data_dir,
        GATEWAY_PORT=str(port),
        AUDIT_ARCHIVE_INTERVAL_SECONDS="0.2",
        INFERENCE_URL=f"http://127.0.0.1:{free_port()}/v1",
    )
    process = subprocess.Popen(
        [*_bwrap_read_only(data_dir / "audit-archive"), sys.executable, "-m", "services.gateway"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: bwrap and the gateway
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        inside = psutil.Process(process.pid).children(recursive=True)
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        _, alive = psutil.wait_procs(inside, timeout=30)
        assert not alive, f"outlived bwrap: {[p.cmdline() for p in alive]}"


def _failures(url: str) -> float:
    try:
        text = httpx.get(f"{url}/metrics", timeout=5, trust_env=False).text
    except httpx.HTTPError:
        return 0.0
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "audit_archive_failures_total"
    )


def test_the_gateway_keeps_the_rows_and_counts_the_failures(gateway: str, data_dir: Path) -> None:
    assert wait_until(lambda: _failures(gateway) >= 2, timeout=90)
    assert _rows(data_dir) == 7
    assert list((data_dir / "audit-archive").iterdir()) == []


def test_the_cli_fails_saying_why_and_keeps_the_rows(data_dir: Path) -> None:
    result = subprocess.run(
        [
            *_bwrap_read_only(data_dir / "audit-archive"),
            sys.executable,
            "-m",
            "services.cli.main",
            "audit",
            "archive",
        ],
        env=_env(data_dir),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "Read-only file system" in result.stderr
    assert "the rows are kept" in result.stderr
    assert _rows(data_dir) == 7
