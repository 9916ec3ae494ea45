"""`python -m services.monitoring.livecheck`: the live check the CI monitoring job runs.

Prometheus is the real binary (Debian's, `make system-deps`) scraping itself and, in the
failing case, a port nobody listens on. Grafana and Loki are a TEST DOUBLE serving their
APIs' answers (tests/support/grafana_loki_double.py); the real Grafana, Loki and Alloy are
checked by the monitoring job of .github/workflows/ci.yml.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from services.monitoring.dashboards import load_dashboard, provisioned_datasources
from services.monitoring.livecheck import main
from tests.support.grafana_loki_double import GrafanaLokiState, grafana_loki_app
from tests.support.live import free_port, serve_in_thread
from tests.support.monitoring import binary
from tests.support.processes import wait_until

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS = ROOT / "docker/grafana/dashboards"
DATASOURCES = ROOT / "docker/grafana/provisioning/datasources/datasources.yml"


def _provisioned_state() -> GrafanaLokiState:
    """Grafana and Loki as they look when everything the repository provisions loaded."""
    dashboards = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        model = load_dashboard(path)
        dashboards[model["uid"]] = model["title"]
    return GrafanaLokiState(
        dashboards=dashboards,
        datasources=provisioned_datasources(DATASOURCES),
        log_lines={"gateway": 3, "rag": 2, "mcp": 1},
    )


@pytest.fixture
def state() -> GrafanaLokiState:
    return _provisioned_state()


@pytest.fixture
def double(state: GrafanaLokiState) -> Iterator[str]:
    with serve_in_thread(grafana_loki_app(state)) as url:
        yield url


def _livecheck(*args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["--dashboards-dir", str(DASHBOARDS), "--datasources-file", str(DATASOURCES), *args],
        env={"GRAFANA_ADMIN_PASSWORD": None, "GRAFANA_ADMIN_USER": None},
    )


def _lines(result: Result, prefix: str) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith(prefix)]


def test_everything_provisioned_and_shipped_passes(double: str) -> None:
    result = _livecheck("--grafana", double, "--loki", double)
    assert result.exit_code == 0, result.output
    assert len(_lines(result, "PASS ")) == 3
    assert _lines(result, "FAIL ") == []
    assert "SKIP prometheus: not checked (no --prometheus)" in result.output


def test_a_dashboard_grafana_did_not_load_fails_naming_it(
    double: str, state: GrafanaLokiState
) -> None:
    uid, title = next(iter(state.dashboards.items()))
    del state.dashboards[uid]
    result = _livecheck("--grafana", double)
    assert result.exit_code == 1
    assert _lines(result, "FAIL grafana dashboards:") == [
        f"FAIL grafana dashboards: 1 of {len(state.dashboards) + 1} provisioned dashboards"
        f" missing: {uid} ({title})"
    ]


def test_a_datasource_missing_or_unhealthy_fails(double: str, state: GrafanaLokiState) -> None:
    state.unhealthy["prometheus"] = 'Post "http://127.0.0.1:9090/api/v1/query": connection refused'
    del state.datasources["loki"]
    result = _livecheck("--grafana", double)
    assert result.exit_code == 1
    [line] = _lines(result, "FAIL grafana datasources:")
    assert "loki missing" in line
    assert "prometheus health check: HTTP 400" in line
    assert "connection refused" in line


def test_a_service_without_log_lines_in_loki_fails_naming_it(
    double: str, state: GrafanaLokiState
) -> None:
    state.log_lines["mcp"] = 0
    result = _livecheck("--loki", double)
    assert result.exit_code == 1
    [line] = _lines(result, "FAIL loki logs:")
    assert "for mcp" in line
    assert "gateway" not in line


def test_the_check_repeats_until_the_lines_arrive(double: str, state: GrafanaLokiState) -> None:
    state.late["rag"] = 2  # the first two rounds find no line of rag
    result = _livecheck("--loki", double, "--wait", "120")
    assert result.exit_code == 0, result.output
    assert state.queries["rag"] == 3
    assert _lines(result, "PASS loki logs:") == ["PASS loki logs: log lines from gateway, rag, mcp"]


def test_without_wait_one_round_decides(double: str, state: GrafanaLokiState) -> None:
    state.late["rag"] = 1
    result = _livecheck("--loki", double)
    assert result.exit_code == 1
    assert state.queries["rag"] == 1


def test_a_wrong_grafana_password_fails_with_the_status(double: str) -> None:
    result = _livecheck("--grafana", double, "--grafana-password", "not-the-password")
    assert result.exit_code == 1
    assert all("HTTP 401" in line for line in _lines(result, "FAIL grafana"))
    assert len(_lines(result, "FAIL grafana")) == 2


def test_a_server_that_does_not_answer_fails_every_check_with_the_reason() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    result = _livecheck("--grafana", nobody, "--loki", nobody, "--prometheus", nobody)
    assert result.exit_code == 1
    assert len(_lines(result, "FAIL ")) == 4
    assert all("ConnectError" in line for line in _lines(result, "FAIL "))


def test_no_server_named_is_a_usage_error() -> None:
    result = _livecheck()
    assert result.exit_code == 2
    assert "name at least one server" in result.output


# --- a real Prometheus --------------------------------------------------------------


def _prometheus(tmp_path: Path, jobs: dict[str, str]) -> Iterator[str]:
    """A real Prometheus scraping ``jobs`` (name -> host:port, "self" for its own port)."""
    executable = binary("prometheus")
    port = free_port()
    scrape = "\n".join(
        f"  - job_name: {name}\n    static_configs:\n"
        f"      - targets: ['{f'127.0.0.1:{port}' if target == 'self' else target}']"
        for name, target in jobs.items()
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{scrape}\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            executable,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None

    try:
        assert wait_until(ready, timeout=60), "Prometheus did not get ready in 60 s"
        assert process.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_for_every_scrape(url: str) -> None:
    """Until Prometheus scraped every target once (none is "unknown" any more)."""

    def scraped() -> bool:
        targets = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return bool(targets) and all(t["health"] != "unknown" for t in targets)

    assert wait_until(scraped, timeout=60), "Prometheus did not scrape every target in 60 s"


def _config_for(tmp_path: Path, jobs: dict[str, str]) -> str:
    path = tmp_path / "expected.yml"
    path.write_text("scrape_configs:\n" + "".join(f"  - job_name: {job}\n" for job in jobs))
    return str(path)


def test_prometheus_with_every_target_up_passes(tmp_path: Path) -> None:
    jobs = {"prometheus": "self"}
    for url in _prometheus(tmp_path, jobs):
        # --wait: the first scrape comes up to one scrape interval after the start.
        result = _livecheck(
            "--prometheus", url, "--prometheus-config", _config_for(tmp_path, jobs), "--wait", "60"
        )
        assert result.exit_code == 0, result.output
        assert _lines(result, "PASS prometheus targets:") == [
            "PASS prometheus targets: all 1 targets up (jobs prometheus)"
        ]


def test_prometheus_with_a_target_down_fails_naming_it(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    jobs = {"prometheus": "self", "gone": dead}
    for url in _prometheus(tmp_path, jobs):
        _wait_for_every_scrape(url)
        result = _livecheck("--prometheus", url, "--prometheus-config", _config_for(tmp_path, jobs))
        assert result.exit_code == 1
        [line] = _lines(result, "FAIL prometheus targets:")
        assert f"job gone http://{dead}/metrics: down" in line
        assert "connection refused" in line
        assert "job prometheus" not in line


def test_prometheus_missing_a_configured_job_fails(tmp_path: Path) -> None:
    jobs = {"prometheus": "self"}
    for url in _prometheus(tmp_path, jobs):
        _wait_for_every_scrape(url)
        expected = _config_for(tmp_path, {"prometheus": "self", "gateway": "unused"})
        result = _livecheck("--prometheus", url, "--prometheus-config", expected)
        assert result.exit_code == 1
        [line] = _lines(result, "FAIL prometheus targets:")
        assert line.startswith("FAIL prometheus targets: job gateway: no active target")


def test_the_module_runs_as_a_script() -> None:
    """`python -m services.monitoring.livecheck`, as the workflow calls it."""
    completed = subprocess.run(
        [sys.executable, "-m", "services.monitoring.livecheck", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "--prometheus URL" in completed.stdout
