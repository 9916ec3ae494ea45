"""Fixtures for the static monitoring checks: the metrics contract and its catalog.

Checks that run promtool or amtool live in tests/integration/monitoring/.
"""

from __future__ import annotations

import pytest
from ai_suite_pytest.metrics.contract import Contract

from services.monitoring.catalog import Catalog
from tests.support.monitoring import CONTRACT_FILE, build_catalog


@pytest.fixture(scope="session")
def contract() -> Contract:
    return Contract.load(CONTRACT_FILE)


@pytest.fixture(scope="session")
def catalog(contract: Contract) -> Catalog:
    return build_catalog(contract)
