"""Fixtures for the monitoring checks that run promtool and amtool.

Every ``promtool test rules`` group under docker/prometheus/tests/ becomes its own pytest
item (parametrized in test_monitoring_promtool.py). The groups run as separate promtool
processes started all at once on first use: promtool spends most of a group waiting, so
running them side by side keeps this folder fast.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.monitoring import PromtoolBatch, binary, rule_test_groups


@pytest.fixture(scope="session")
def promtool() -> str:
    return binary("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return binary("amtool")


@pytest.fixture(scope="session")
def promtool_batch(
    promtool: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PromtoolBatch]:
    batch = PromtoolBatch(promtool, rule_test_groups(), tmp_path_factory.mktemp("promtool"))
    yield batch
    batch.close()
