"""The dead man's switch: reported once when the Watchdog is overdue, again when it is back."""

from __future__ import annotations

import pytest

from services.monitoring.deadman import DeadMansSwitch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_silence_is_reported_once_and_recovery_once() -> None:
    clock = Clock()
    switch = DeadMansSwitch(300, clock=clock)
    assert switch.beat() == "dead man's switch armed: the Watchdog arrived"
    clock.now += 299
    assert switch.check() is None
    clock.now += 2
    message = switch.check()
    assert message is not None
    assert "no Watchdog from Alertmanager for 301s" in message
    clock.now += 600
    assert switch.check() is None  # once per outage, not every poll
    assert switch.beat() == "DEAD MAN'S SWITCH: the Watchdog arrives again; alerting works"
    clock.now += 60
    assert switch.beat() is None
    assert switch.check() is None


def test_a_watchdog_that_never_arrives_is_reported() -> None:
    clock = Clock()
    switch = DeadMansSwitch(60, clock=clock)
    clock.now += 61
    message = switch.check()
    assert message is not None
    assert "since this listener started" in message


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        DeadMansSwitch(0)
