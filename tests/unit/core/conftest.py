"""Fixtures for the core unit tests: Prometheus text parsing and ASGI clients."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.keys import migrated_database


def parse_samples(text: str, name: str) -> list[Sample]:
    """Every sample called ``name`` in a Prometheus text exposition."""
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


@pytest.fixture
def client_for() -> Callable[..., httpx.AsyncClient]:
    """An httpx client that calls an ASGI app in-process."""

    def make(app: object, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", **kwargs
        )

    return make


@pytest.fixture
def scrape() -> Callable[[httpx.AsyncClient, str], object]:
    """``await scrape(client, name)``: the samples of ``name`` from the client's /metrics."""

    async def do(client: httpx.AsyncClient, name: str) -> list[Sample]:
        response = await client.get("/metrics")
        assert response.status_code == 200
        return parse_samples(response.text, name)

    return do


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_database(tmp_path_factory.mktemp("template") / "security.db")


@pytest.fixture
def security_db_path(tmp_path: Path, migrated_template: Path) -> Path:
    """A copy of the migrated template in this test's tmp_path."""
    path = tmp_path / "security.db"
    shutil.copyfile(migrated_template, path)
    return path
