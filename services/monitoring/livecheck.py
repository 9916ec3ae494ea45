"""Live check of a running monitoring stack (docker/compose.monitoring.yml with the platform).

    python -m services.monitoring.livecheck --grafana http://127.0.0.1:3000 \\
        --loki http://127.0.0.1:3100 --prometheus http://127.0.0.1:9090 --wait 180

What the static checks (tests/unit/monitoring) cannot see, asked of the live servers:

- Grafana accepted every provisioned dashboard (``/api/search``, by uid) and every
  provisioned datasource (``/api/datasources``), and each datasource answers its health
  check (``/api/datasources/uid/<uid>/health``: Grafana reaching Prometheus and Loki);
- Loki holds log lines of each platform service, shipped by Alloy
  (``/loki/api/v1/query_range`` with ``{service="<name>"}``);
- Prometheus scrapes a target of every job of its configuration, and every active target is
  up (``/api/v1/targets``).

The checks are repeated until they all pass or ``--wait`` seconds have gone by (Alloy and
Prometheus need a few scrape and sync periods after a start); then each check prints one
PASS or FAIL line saying what it saw, and the exit status is 1 if any failed. The GitHub
workflow's monitoring job runs it (.github/workflows/ci.yml).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay, wait_fixed

from services.core.yamlfile import safe_load
from services.monitoring.dashboards import load_dashboard, provisioned_datasources

# The services Alloy ships logs of (docker/alloy/config.alloy keeps these three).
PLATFORM_SERVICES = ("gateway", "rag", "mcp")
DEFAULT_DASHBOARDS_DIR = Path("docker/grafana/dashboards")
DEFAULT_DATASOURCES_FILE = Path("docker/grafana/provisioning/datasources/datasources.yml")
DEFAULT_PROMETHEUS_CONFIG = Path("docker/prometheus/prometheus.yml")
# How far back Loki is asked for a service's lines.
LOG_LOOKBACK_SECONDS = 3600
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'} {self.name}: {self.detail}"


@dataclass(frozen=True)
class Expectations:
    """What the repository provisions: the live servers must show all of it."""

    dashboards: dict[str, str]  # uid -> title
    datasources: dict[str, str]  # uid -> type
    services: tuple[str, ...]
    jobs: tuple[str, ...]


def expected_dashboards(folder: Path) -> dict[str, str]:
    """uid -> title of every dashboard file provisioning loads from ``folder``."""
    found = {}
    for path in sorted(folder.glob("*.json")):
        model = load_dashboard(path)
        found[str(model["uid"])] = str(model.get("title", path.stem))
    if not found:
        raise click.UsageError(f"no dashboard (*.json) in {folder}: pass --dashboards-dir")
    return found


def expected_jobs(prometheus_config: Path) -> tuple[str, ...]:
    config = safe_load(prometheus_config.read_text()) or {}
    jobs = tuple(str(c["job_name"]) for c in config.get("scrape_configs") or [])
    if not jobs:
        raise click.UsageError(
            f"{prometheus_config} has no scrape_configs: pass --prometheus-config"
        )
    return jobs


def _get_json(client: httpx.Client, url: str, **params: Any) -> Any:
    response = client.get(url, params=params or None, timeout=REQUEST_TIMEOUT_SECONDS)
    response.raise_for_status()
    return response.json()


def _guarded(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """A server that does not answer, or answers garbage, fails the check with the reason."""
    try:
        return check()
    except httpx.HTTPStatusError as exc:
        body = exc.response.text[:200]
        return CheckResult(
            name, False, f"HTTP {exc.response.status_code} from {exc.request.url}: {body}"
        )
    except httpx.HTTPError as exc:
        return CheckResult(name, False, f"{type(exc).__name__} for {exc.request.url}: {exc}")
    except (ValueError, KeyError, TypeError) as exc:
        return CheckResult(name, False, f"unexpected answer ({type(exc).__name__}: {exc})")


def check_grafana_dashboards(
    client: httpx.Client, grafana: str, expected: dict[str, str]
) -> CheckResult:
    def run() -> CheckResult:
        found = _get_json(client, f"{grafana}/api/search", type="dash-db", limit=5000)
        uids = {str(item["uid"]) for item in found}
        missing = [f"{uid} ({title})" for uid, title in expected.items() if uid not in uids]
        if missing:
            return CheckResult(
                "grafana dashboards",
                False,
                f"{len(missing)} of {len(expected)} provisioned dashboards missing:"
                f" {', '.join(missing)}",
            )
        return CheckResult(
            "grafana dashboards",
            True,
            f"all {len(expected)} provisioned dashboards loaded ({', '.join(sorted(expected))})",
        )

    return _guarded("grafana dashboards", run)


def check_grafana_datasources(
    client: httpx.Client, grafana: str, expected: dict[str, str]
) -> CheckResult:
    def run() -> CheckResult:
        found = {
            str(d["uid"]): str(d["type"]) for d in _get_json(client, f"{grafana}/api/datasources")
        }
        problems = []
        for uid, kind in expected.items():
            if uid not in found:
                problems.append(f"{uid} missing")
            elif found[uid] != kind:
                problems.append(f"{uid} is of type {found[uid]}, provisioned as {kind}")
            else:
                response = client.get(
                    f"{grafana}/api/datasources/uid/{uid}/health", timeout=REQUEST_TIMEOUT_SECONDS
                )
                health = response.json() if response.content else {}
                if response.status_code != 200 or health.get("status") != "OK":
                    message = health.get("message", "")
                    problems.append(
                        f"{uid} health check: HTTP {response.status_code} {message}".rstrip()
                    )
        if problems:
            return CheckResult("grafana datasources", False, "; ".join(problems))
        return CheckResult(
            "grafana datasources",
            True,
            f"all {len(expected)} provisioned datasources loaded and healthy"
            f" ({', '.join(sorted(expected))})",
        )

    return _guarded("grafana datasources", run)


def check_loki_services(
    client: httpx.Client, loki: str, services: Sequence[str], *, now: float
) -> CheckResult:
    def run() -> CheckResult:
        start_ns = int((now - LOG_LOOKBACK_SECONDS) * 1e9)
        counts = {}
        for service in services:
            answer = _get_json(
                client,
                f"{loki}/loki/api/v1/query_range",
                query=f'{{service="{service}"}}',
                start=str(start_ns),
                limit=5,
                direction="backward",
            )
            counts[service] = sum(len(stream["values"]) for stream in answer["data"]["result"])
        silent = [s for s, n in counts.items() if n == 0]
        if silent:
            return CheckResult(
                "loki logs",
                False,
                f"no log line in the last {LOG_LOOKBACK_SECONDS // 60} min for {', '.join(silent)}"
                " (is Alloy running and shipping to Loki?)",
            )
        return CheckResult("loki logs", True, f"log lines from {', '.join(services)}")

    return _guarded("loki logs", run)


def check_prometheus_targets(
    client: httpx.Client, prometheus: str, jobs: Sequence[str]
) -> CheckResult:
    def run() -> CheckResult:
        answer = _get_json(client, f"{prometheus}/api/v1/targets", state="active")
        targets = answer["data"]["activeTargets"]
        problems = []
        seen_jobs = {str(t["labels"].get("job", t.get("scrapePool", ""))) for t in targets}
        problems += [f"job {job}: no active target" for job in jobs if job not in seen_jobs]
        for target in targets:
            if target["health"] != "up":
                error = target.get("lastError") or "not scraped yet"
                job = target["labels"].get("job")
                problems.append(f"job {job} {target['scrapeUrl']}: {target['health']} ({error})")
        if problems:
            return CheckResult("prometheus targets", False, "; ".join(problems))
        return CheckResult(
            "prometheus targets",
            True,
            f"all {len(targets)} targets up (jobs {', '.join(sorted(seen_jobs))})",
        )

    return _guarded("prometheus targets", run)


@dataclass(frozen=True)
class Endpoints:
    grafana: str | None
    loki: str | None
    prometheus: str | None


def run_checks(
    client: httpx.Client,
    endpoints: Endpoints,
    expected: Expectations,
    *,
    now: Callable[[], float] = time.time,
) -> list[CheckResult]:
    """One round of every check whose server was named."""
    results = []
    if endpoints.grafana:
        results.append(check_grafana_dashboards(client, endpoints.grafana, expected.dashboards))
        results.append(check_grafana_datasources(client, endpoints.grafana, expected.datasources))
    if endpoints.loki:
        results.append(check_loki_services(client, endpoints.loki, expected.services, now=now()))
    if endpoints.prometheus:
        results.append(check_prometheus_targets(client, endpoints.prometheus, expected.jobs))
    return results


def _failed(results: Iterable[CheckResult]) -> bool:
    return not all(r.ok for r in results)


def check_until(
    client: httpx.Client,
    endpoints: Endpoints,
    expected: Expectations,
    *,
    wait: float,
    every: float = 2.0,
) -> list[CheckResult]:
    """Repeat the checks until all pass or ``wait`` seconds passed; the last round's results."""

    def last_round(state: RetryCallState) -> list[CheckResult]:
        assert state.outcome is not None  # tenacity calls this only after an attempt
        return state.outcome.result()

    retrying = Retrying(
        stop=stop_after_delay(wait),
        wait=wait_fixed(every),
        retry=retry_if_result(_failed),
        retry_error_callback=last_round,
    )
    return retrying(run_checks, client, endpoints, expected)


def _base(url: str | None) -> str | None:
    return url.rstrip("/") if url else None


@click.command()
@click.option("--grafana", metavar="URL", help="Grafana's base URL, e.g. http://127.0.0.1:3000.")
@click.option("--loki", metavar="URL", help="Loki's base URL, e.g. http://127.0.0.1:3100.")
@click.option(
    "--prometheus", metavar="URL", help="Prometheus' base URL, e.g. http://127.0.0.1:9090."
)
@click.option("--grafana-user", default="admin", show_default=True, envvar="GRAFANA_ADMIN_USER")
@click.option(
    "--grafana-password",
    default="admin",
    envvar="GRAFANA_ADMIN_PASSWORD",
    help="Grafana's admin password (compose.monitoring.yml's GRAFANA_ADMIN_PASSWORD).",
)
@click.option(
    "--dashboards-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=DEFAULT_DASHBOARDS_DIR,
    show_default=True,
)
@click.option(
    "--datasources-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=DEFAULT_DATASOURCES_FILE,
    show_default=True,
)
@click.option(
    "--prometheus-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=DEFAULT_PROMETHEUS_CONFIG,
    show_default=True,
    help="Every job of its scrape_configs must have an active target.",
)
@click.option(
    "--service",
    "services",
    multiple=True,
    default=PLATFORM_SERVICES,
    show_default=True,
    help="A service whose log lines Loki must hold (repeat the option).",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to keep repeating the checks until they all pass.",
)
def main(
    grafana: str | None,
    loki: str | None,
    prometheus: str | None,
    grafana_user: str,
    grafana_password: str,
    dashboards_dir: Path,
    datasources_file: Path,
    prometheus_config: Path,
    services: tuple[str, ...],
    wait: float,
) -> None:
    """Check a running monitoring stack through Grafana's, Loki's and Prometheus' HTTP APIs."""
    endpoints = Endpoints(_base(grafana), _base(loki), _base(prometheus))
    if not (endpoints.grafana or endpoints.loki or endpoints.prometheus):
        raise click.UsageError("name at least one server: --grafana, --loki or --prometheus")
    expected = Expectations(
        dashboards=expected_dashboards(dashboards_dir) if endpoints.grafana else {},
        datasources=provisioned_datasources(datasources_file) if endpoints.grafana else {},
        services=tuple(services),
        jobs=expected_jobs(prometheus_config) if endpoints.prometheus else (),
    )
    # Basic auth goes to Grafana only (Loki and Prometheus have none here).
    with httpx.Client(
        auth=_GrafanaAuth(endpoints.grafana, grafana_user, grafana_password)
    ) as client:
        results = check_until(client, endpoints, expected, wait=wait)
    for result in results:
        click.echo(result.line())
    for name, url in (("grafana", grafana), ("loki", loki), ("prometheus", prometheus)):
        if not url:
            click.echo(f"SKIP {name}: not checked (no --{name})")
    failed = sum(not r.ok for r in results)
    click.echo(f"livecheck: {len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


class _GrafanaAuth(httpx.Auth):
    """HTTP basic auth on requests to Grafana's base URL, nothing on the others."""

    def __init__(self, grafana: str | None, user: str, password: str) -> None:
        self._grafana = grafana
        self._basic = httpx.BasicAuth(user, password)

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        if self._grafana and str(request.url).startswith(self._grafana + "/"):
            yield from self._basic.auth_flow(request)
        else:
            yield request


if __name__ == "__main__":
    main()
