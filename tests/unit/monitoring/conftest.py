"""Fixtures for the static monitoring checks: binaries, the metrics catalog, promtool runs.

Every ``promtool test rules`` group under docker/prometheus/tests/ becomes its own pytest
item (parametrized in test_monitoring_promtool.py). The groups run as separate promtool
processes started all at once on first use: promtool spends most of a group waiting, so
running them side by side keeps this folder fast.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from monitoring_support import (
    CONTRACT_FILE,
    PromtoolBatch,
    binary,
    build_catalog,
    rule_test_groups,
)

from pytest_plugins.metrics.contract import Contract
from services.monitoring.catalog import Catalog


@pytest.fixture(scope="session")
def promtool() -> str:
    return binary("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return binary("amtool")


@pytest.fixture(scope="session")
def contract() -> Contract:
    return Contract.load(CONTRACT_FILE)


@pytest.fixture(scope="session")
def catalog(contract: Contract) -> Catalog:
    return build_catalog(contract)


@pytest.fixture(scope="session")
def promtool_batch(
    promtool: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PromtoolBatch]:
    batch = PromtoolBatch(promtool, rule_test_groups(), tmp_path_factory.mktemp("promtool"))
    yield batch
    batch.close()
