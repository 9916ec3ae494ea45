"""promtool: the configuration and rules are valid, and every rule test group passes.

Each group of docker/prometheus/tests/*.yml is its own item, so a failure names the case.
The last tests prove the harness can fail: a mutated copy of a rule breaks its test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.monitoring.config import render_prometheus
from tests.support.monitoring import (
    PROMETHEUS_DIR,
    PromtoolBatch,
    RuleTestGroup,
    dump_yaml,
    load_yaml,
    rule_test_groups,
    run,
    write_single_group,
)

GROUPS = rule_test_groups()


@pytest.mark.parametrize("group", GROUPS, ids=[group.id for group in GROUPS])
def test_rule_group(group: RuleTestGroup, promtool_batch: PromtoolBatch) -> None:
    returncode, output = promtool_batch.result(group.id)
    assert returncode == 0, f"promtool test rules failed for {group.id}:\n{output}"


def test_check_config(promtool: str) -> None:
    result = run([promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_rules_with_duplicate_lint(promtool: str) -> None:
    files = sorted(str(p) for p in (PROMETHEUS_DIR / "rules").glob("*.yml"))
    result = run([promtool, "check", "rules", "--lint=all", "--lint-fatal", *files])
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_variant_is_valid(promtool: str, tmp_path: Path) -> None:
    rendered = render_prometheus(
        tmp_path,
        targets={"gateway": "127.0.0.1:18000", "prometheus": "127.0.0.1:19090"},
        alertmanager="127.0.0.1:19093",
        for_limit="5s",
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    result = run([promtool, "check", "config", str(rendered.config)])
    assert result.returncode == 0, result.stdout + result.stderr


# --- the harness can fail ------------------------------------------------------------------


def _mutated_rules(tmp_path: Path, old: str, new: str) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(PROMETHEUS_DIR / "rules", rules)
    alerts = rules / "alerts.yml"
    text = alerts.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in alerts.yml"
    alerts.write_text(text.replace(old, new))
    return rules


def _run_group_against(
    promtool: str, group: RuleTestGroup, rules: Path, tmp_path: Path
) -> tuple[int, str]:
    path = write_single_group(group, tmp_path)
    data = load_yaml(path)
    data["rule_files"] = [str(rules / Path(p).name) for p in data["rule_files"]]
    path.write_text(dump_yaml(data))
    result = run([promtool, "test", "rules", str(path)])
    return result.returncode, result.stdout + result.stderr


def _group(prefix: str) -> RuleTestGroup:
    return next(group for group in GROUPS if group.name.startswith(prefix))


@pytest.mark.parametrize(
    ("old", "new", "group_prefix"),
    [
        # a threshold that no longer fires for 25% errors
        (
            "service:http_requests_5xx:ratio_rate5m > 0.05",
            "service:http_requests_5xx:ratio_rate5m > 0.5",
            "High5xxRatio fires",
        ),
        # the predecessor's bug: the wrong label name
        ("up == 0", 'up{status_code="0"} == 0', "ServiceDown fires"),
        # a `for` so short that a single failed scrape pages
        ("for: 30s", "for: 0s", "ServiceDown stays silent"),
    ],
    ids=["threshold", "label-name", "for-duration"],
)
def test_a_broken_rule_fails_its_test(
    promtool: str, tmp_path: Path, old: str, new: str, group_prefix: str
) -> None:
    group = _group(group_prefix)
    returncode, output = _run_group_against(
        promtool, group, _mutated_rules(tmp_path, old, new), tmp_path
    )
    assert returncode != 0, output
    assert group.name in output
