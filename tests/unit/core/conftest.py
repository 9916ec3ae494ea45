"""Fixtures for the core unit tests: Prometheus text parsing and ASGI clients."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def parse_samples(text: str, name: str) -> list[Sample]:
    """Every sample called ``name`` in a Prometheus text exposition."""
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


@pytest.fixture
def scrape() -> Callable[[httpx.AsyncClient, str], object]:
    """``await scrape(client, name)``: the samples of ``name`` from the client's /metrics."""

    async def do(client: httpx.AsyncClient, name: str) -> list[Sample]:
        response = await client.get("/metrics")
        assert response.status_code == 200
        return parse_samples(response.text, name)

    return do
