"""Circuit breaker transitions, driven by a fake clock (no sleeps)."""

from __future__ import annotations

import pytest

from services.gateway.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def changes() -> list[tuple[str, BreakerState]]:
    return []


@pytest.fixture
def breaker(clock: FakeClock, changes: list[tuple[str, BreakerState]]) -> CircuitBreaker:
    return CircuitBreaker(
        "llamacpp",
        failure_threshold=3,
        reset_timeout=10.0,
        clock=clock,
        on_change=lambda name, state: changes.append((name, state)),
    )


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        assert breaker.allow_request()
        breaker.record_failure()


def test_starts_closed_and_allows(breaker: CircuitBreaker) -> None:
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow_request()
    assert breaker.retry_after() == 0.0


def test_opens_after_consecutive_failures(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow_request()


def test_success_resets_the_failure_count(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 2


def test_open_rejects_until_timeout_then_half_open(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    assert breaker.retry_after() == pytest.approx(10.0)
    clock.advance(9.5)
    assert not breaker.allow_request()
    assert breaker.retry_after() == pytest.approx(0.5)
    assert breaker.state is BreakerState.OPEN  # reading never transitions
    clock.advance(0.5)
    assert breaker.allow_request()
    assert breaker.state is BreakerState.HALF_OPEN


def test_half_open_admits_a_single_trial(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(10)
    assert breaker.allow_request()
    # Interleaved requests arriving while the trial is in flight are turned away.
    assert not breaker.allow_request()
    assert not breaker.allow_request()
    assert breaker.retry_after() > 0


def test_trial_success_closes(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(10)
    assert breaker.allow_request()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.allow_request()
    assert breaker.allow_request()


def test_trial_failure_reopens_for_a_full_timeout(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.advance(10)
    assert breaker.allow_request()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(10.0)
    clock.advance(9.9)
    assert not breaker.allow_request()
    clock.advance(0.1)
    assert breaker.allow_request()


def test_lost_trial_is_replaced_after_timeout(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(10)
    assert breaker.allow_request()  # this trial never reports back
    clock.advance(9)
    assert not breaker.allow_request()
    clock.advance(1)
    assert breaker.allow_request()
    assert not breaker.allow_request()


def test_late_failure_while_open_does_not_extend(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(5)
    breaker.record_failure()  # from a request admitted before the breaker opened
    assert breaker.retry_after() == pytest.approx(5.0)
    clock.advance(5)
    assert breaker.allow_request()


def test_late_success_while_open_closes(breaker: CircuitBreaker) -> None:
    trip(breaker)
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow_request()


def test_callback_sees_every_transition_once(
    breaker: CircuitBreaker, clock: FakeClock, changes: list[tuple[str, BreakerState]]
) -> None:
    trip(breaker)
    breaker.record_failure()  # already open: no transition
    clock.advance(10)
    breaker.allow_request()
    breaker.record_failure()
    clock.advance(10)
    breaker.allow_request()
    breaker.record_success()
    breaker.record_success()  # already closed: no transition
    assert changes == [
        ("llamacpp", BreakerState.OPEN),
        ("llamacpp", BreakerState.HALF_OPEN),
        ("llamacpp", BreakerState.OPEN),
        ("llamacpp", BreakerState.HALF_OPEN),
        ("llamacpp", BreakerState.CLOSED),
    ]


def test_failing_callback_does_not_break_the_breaker(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(name: str, state: BreakerState) -> None:
        raise RuntimeError("gauge broke")

    breaker = CircuitBreaker("b", failure_threshold=1, clock=clock, on_change=explode)
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert "state listener failed" in caplog.text


def test_states_are_gauge_values() -> None:
    assert [int(s) for s in BreakerState] == [0, 1, 2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"failure_threshold": 0}, "failure_threshold"), ({"reset_timeout": -1}, "reset_timeout")],
)
def test_rejects_invalid_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker("b", **kwargs)  # type: ignore[arg-type]


def test_real_clock_default() -> None:
    breaker = CircuitBreaker("b", failure_threshold=1, reset_timeout=0.0)
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.allow_request()
    assert breaker.state is BreakerState.HALF_OPEN


def test_a_neutral_answer_neither_counts_nor_resets_the_count(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_neutral()  # e.g. the upstream's 400 to a client's bad request
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 2
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def test_a_neutral_trial_frees_the_slot_without_closing(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.advance(10)
    assert breaker.allow_request()
    assert not breaker.allow_request()  # one trial at a time
    breaker.record_neutral()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow_request()  # the next request is the trial


def test_a_neutral_answer_while_open_changes_nothing(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.advance(4)
    breaker.record_neutral()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(6.0)
