"""How ``ai-suite up`` runs Prometheus and Alertmanager: binaries from PATH, rendered config.

Debian installs Alertmanager as ``prometheus-alertmanager``; upstream calls it
``alertmanager``. Both listen on the platform host only, keep their data under
``$AI_SUITE_DATA_DIR/monitoring`` and retain 7 days, like the compose stack.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from services.core.supervisor import ServiceSpec
from services.monitoring.config import MonitoringRender
from services.monitoring.settings import MonitoringSettings

RETENTION = "7d"
PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("alertmanager", "prometheus-alertmanager")


class MissingBinary(RuntimeError):
    """A monitoring binary is not on PATH."""


def find_binary(candidates: tuple[str, ...]) -> str:
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    raise MissingBinary(
        f"none of {', '.join(candidates)} is on PATH: run `make system-deps` (Debian packages"
        " prometheus and prometheus-alertmanager) or install them from prometheus.io"
    )


def prometheus_spec(settings: MonitoringSettings, rendered: MonitoringRender) -> ServiceSpec:
    data = Path(settings.monitoring_dir) / "prometheus-data"
    data.mkdir(parents=True, exist_ok=True)
    address = f"{settings.host}:{settings.prometheus_port}"
    return ServiceSpec(
        name="prometheus",
        argv=[
            find_binary(PROMETHEUS_BINARIES),
            f"--config.file={rendered.prometheus.config}",
            f"--storage.tsdb.path={data}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address={address}",
            f"--web.external-url=http://{address}/",
        ],
        host=settings.host,
        port=settings.prometheus_port,
        ready_path="/-/ready",
    )


def alertmanager_spec(settings: MonitoringSettings, rendered: MonitoringRender) -> ServiceSpec:
    data = Path(settings.monitoring_dir) / "alertmanager-data"
    data.mkdir(parents=True, exist_ok=True)
    address = f"{settings.host}:{settings.alertmanager_port}"
    return ServiceSpec(
        name="alertmanager",
        argv=[
            find_binary(ALERTMANAGER_BINARIES),
            f"--config.file={rendered.alertmanager}",
            f"--storage.path={data}",
            f"--data.retention={24 * 7}h",
            f"--web.listen-address={address}",
            f"--web.external-url=http://{address}/",
            # A single instance: an empty address turns the gossip cluster off, which would
            # otherwise listen on every interface (port 9094).
            "--cluster.listen-address=",
        ],
        host=settings.host,
        port=settings.alertmanager_port,
        ready_path="/-/ready",
    )
