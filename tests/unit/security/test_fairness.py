"""The shared per-key limiter (services/security/fairness.py), in one process.

Sharing across processes and reclaiming the leases of a killed holder:
tests/integration/test_fairness_processes.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.security.db import Database
from services.security.fairness import (
    Fairness,
    FairnessLimits,
    FairnessMetrics,
    FairnessUnavailable,
    LimitExceeded,
    open_fairness_db,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_fairness_db(tmp_path / "fairness.db")
    yield database
    database.close()


def limits(rate: int = 3, concurrent: int = 2) -> FairnessLimits:
    return FairnessLimits(rate, concurrent, "X_RATE_LIMIT_PER_MINUTE", "X_MAX_CONCURRENT_PER_KEY")


def refusal(fairness: Fairness, key: str = "1", *, hold: bool = False) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as caught:
        fairness.admit_sync(key, hold=hold)
    return caught.value


def test_rate_allows_the_limit_then_refuses_with_retry_after(db: Database) -> None:
    clock = Clock()
    fairness = Fairness(db, "svc", limits(rate=3), clock=clock)
    for _ in range(3):
        assert fairness.admit_sync("1", hold=False) is None
    refused = refusal(fairness)
    assert refused.limit == "rate"
    assert refused.code == "rate_limited"
    # One token comes back every 60/3 = 20 s.
    assert refused.retry_after == 20
    assert refused.headers == {"Retry-After": "20"}
    assert "3 requests a minute" in refused.message
    assert "X_RATE_LIMIT_PER_MINUTE" in refused.message


def test_rate_window_refills_with_time(db: Database) -> None:
    clock = Clock()
    fairness = Fairness(db, "svc", limits(rate=3), clock=clock)
    for _ in range(3):
        fairness.admit_sync("1", hold=False)
    clock.now += 19.9
    assert refusal(fairness).retry_after == 1  # 0.1 s short of a token: never 0
    clock.now += 0.2
    assert fairness.admit_sync("1", hold=False) is None  # one token back
    refusal(fairness)
    clock.now += 600  # a long pause refills the bucket, but never beyond the limit
    for _ in range(3):
        fairness.admit_sync("1", hold=False)
    refusal(fairness)


def test_a_refused_call_takes_no_token_and_a_clock_step_back_drains_nothing(
    db: Database,
) -> None:
    clock = Clock()
    fairness = Fairness(db, "svc", limits(rate=60), clock=clock)
    for _ in range(60):
        fairness.admit_sync("1", hold=False)
    for _ in range(5):  # hammering while refused does not push the next slot away
        assert refusal(fairness).retry_after == 1
    clock.now += 1.0
    fairness.admit_sync("1", hold=False)
    clock.now -= 100  # wall clock stepped back
    assert refusal(fairness).retry_after == 1


def test_keys_and_scopes_are_independent(db: Database) -> None:
    clock = Clock()
    gateway = Fairness(db, "gateway", limits(rate=1), clock=clock)
    mcp = Fairness(db, "mcp", limits(rate=1), clock=clock)
    gateway.admit_sync("1", hold=False)
    refusal(gateway, "1")
    gateway.admit_sync("2", hold=False)
    mcp.admit_sync("1", hold=False)


def test_concurrency_allows_the_limit_then_refuses_until_a_release(db: Database) -> None:
    fairness = Fairness(db, "svc", limits(rate=100, concurrent=2), clock=Clock())
    first = fairness.admit_sync("1")
    second = fairness.admit_sync("1")
    refused = refusal(fairness, hold=True)
    assert refused.limit == "concurrency"
    assert refused.code == "too_many_concurrent_requests"
    assert refused.retry_after == 1
    assert "X_MAX_CONCURRENT_PER_KEY" in refused.message
    assert fairness.in_flight("1") == 2
    assert fairness.admit_sync("2") is not None  # another key is not affected
    fairness.release_sync(first)
    fairness.release_sync(first)  # a second release is a no-op, not a freed slot
    third = fairness.admit_sync("1")
    refusal(fairness, hold=True)
    fairness.release_sync(second)
    fairness.release_sync(third)
    assert fairness.in_flight("1") == 0


def test_a_call_refused_for_concurrency_still_counts_against_the_rate(db: Database) -> None:
    fairness = Fairness(db, "svc", limits(rate=3, concurrent=1), clock=Clock())
    fairness.admit_sync("1")
    refusal(fairness, hold=True)  # concurrency
    refusal(fairness, hold=True)  # concurrency
    assert refusal(fairness, hold=True).limit == "rate"


def test_leases_nobody_renews_expire_and_renewed_ones_do_not(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "fairness.db"
    db_a, db_b = open_fairness_db(path), open_fairness_db(path)
    try:
        holder = Fairness(db_a, "svc", limits(rate=100, concurrent=1), lease_ttl=30, clock=clock)
        other = Fairness(db_b, "svc", limits(rate=100, concurrent=1), lease_ttl=30, clock=clock)
        holder.admit_sync("1")
        clock.now += 25
        holder.renew_sync()  # the holder is alive: it renews
        clock.now += 25
        refusal(other, hold=True)  # 50 s after taking it, still held
        clock.now += 31  # no renewal for longer than the TTL: the holder is gone
        assert other.admit_sync("1") is not None
    finally:
        db_a.close()
        db_b.close()


def test_metrics_count_refusals_by_limit_and_leases_in_flight(db: Database) -> None:
    registry = CollectorRegistry()
    fairness = Fairness(
        db, "gateway", limits(rate=2, concurrent=1), metrics=FairnessMetrics(registry, "gateway")
    )

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"service": "gateway", **labels})

    assert sample("rate_limited_total", limit="rate") == 0
    lease = fairness.admit_sync("1")
    assert sample("fairness_in_flight") == 1
    refusal(fairness, hold=True)
    refusal(fairness, hold=True)
    assert sample("rate_limited_total", limit="concurrency") == 1
    assert sample("rate_limited_total", limit="rate") == 1
    fairness.release_sync(lease)
    assert sample("fairness_in_flight") == 0


def test_the_file_is_private_and_state_from_another_version_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "fairness.db"
    db = open_fairness_db(path)
    Fairness(db, "svc", limits(rate=1)).admit_sync("1", hold=False)
    db.connection().execute("PRAGMA user_version = 99")
    db.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    db = open_fairness_db(path)
    try:
        assert db.query("SELECT * FROM buckets") == []
    finally:
        db.close()


def test_a_damaged_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "fairness.db"
    path.write_bytes(b"not a database at all, " * 100)
    db = open_fairness_db(path)
    try:
        assert Fairness(db, "svc", limits(rate=1)).admit_sync("1", hold=False) is None
    finally:
        db.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_broken_database_refuses_calls_and_never_fails_a_release(db: Database) -> None:
    fairness = Fairness(db, "svc", limits(rate=10, concurrent=2))
    lease = fairness.admit_sync("1")
    db.connection().execute("DROP TABLE leases")
    fairness.release_sync(lease)  # logged; the lease would expire by itself
    db.connection().execute("DROP TABLE buckets")
    with pytest.raises(FairnessUnavailable) as caught:
        fairness.admit_sync("1")
    error = caught.value.api_error()
    assert (error.status, error.code) == (503, "fairness_unavailable")
    assert "writable" in error.message
