"""Settings of the security database's own upkeep (read by ``ai-suite up`` and ``db``)."""

from __future__ import annotations

from services.core.settings import CoreSettings, env_field


class BackupSettings(CoreSettings):
    backup_interval_hours: float = env_field(
        "AI_SUITE_BACKUP_INTERVAL_HOURS",
        default=0.0,
        ge=0,
        description="`ai-suite up` backs the security database up this often, into"
        " <data_dir>/backups/scheduled (0: no scheduled backups; `ai-suite db backup` any"
        " time).",
    )
    backup_keep: int = env_field(
        "AI_SUITE_BACKUP_KEEP",
        default=7,
        ge=1,
        description="Scheduled backups keep this many newest security-*.db files in"
        " <data_dir>/backups/scheduled and delete older ones (never those taken by hand).",
    )
