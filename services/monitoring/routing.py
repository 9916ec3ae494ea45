"""Alertmanager semantics the static checks need beyond ``amtool``: inhibition and empty
receivers.

``amtool config routes test`` answers "which receiver gets this alert"; it cannot say
whether an alert is silenced by another firing alert, so inhibition is evaluated here
from the configuration's ``inhibit_rules``, with Alertmanager's rules: source and target
matchers, labels in ``equal`` must have the same value (a missing label counts as empty),
and an alert never inhibits itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')
CHANNEL_KEYS = (
    "webhook_configs",
    "slack_configs",
    "email_configs",
    "pagerduty_configs",
    "opsgenie_configs",
    "pushover_configs",
    "victorops_configs",
    "wechat_configs",
    "telegram_configs",
    "sns_configs",
    "webex_configs",
    "discord_configs",
    "msteams_configs",
)


@dataclass(frozen=True)
class AlertMatcher:
    label: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> AlertMatcher:
        found = _MATCHER.match(text)
        if not found:
            raise ValueError(f'not a matcher: {text!r} (expected e.g. severity="critical")')
        return cls(found[1], found[2], found[3])

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.label, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        # Alertmanager anchors regex matchers.
        hit = re.fullmatch(self.value, value) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[AlertMatcher, ...]
    target: tuple[AlertMatcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> InhibitRule:
        for legacy in ("source_match", "target_match", "source_match_re", "target_match_re"):
            if legacy in raw:
                raise ValueError(f"{legacy} is deprecated: use source_matchers/target_matchers")
        return cls(
            tuple(AlertMatcher.parse(m) for m in raw.get("source_matchers") or []),
            tuple(AlertMatcher.parse(m) for m in raw.get("target_matchers") or []),
            tuple(raw.get("equal") or []),
        )

    def inhibits(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        return (
            dict(source) != dict(target)
            and all(m.matches(source) for m in self.source)
            and all(m.matches(target) for m in self.target)
            and all(source.get(k, "") == target.get(k, "") for k in self.equal)
        )


def inhibit_rules(config: Mapping[str, Any]) -> list[InhibitRule]:
    return [InhibitRule.from_config(raw) for raw in config.get("inhibit_rules") or []]


def is_inhibited(
    config: Mapping[str, Any], target: Mapping[str, str], firing: Iterable[Mapping[str, str]]
) -> bool:
    """Whether ``target`` is silenced while the alerts ``firing`` fire."""
    rules = inhibit_rules(config)
    return any(rule.inhibits(source, target) for source in firing for rule in rules)


def receivers_without_channel(config: Mapping[str, Any]) -> list[str]:
    """Receivers that deliver nowhere (the predecessor's alerts went nowhere this way)."""
    return [
        receiver.get("name", "?")
        for receiver in config.get("receivers") or []
        if not any(receiver.get(key) for key in CHANNEL_KEYS)
    ]


def route_receivers(route: Mapping[str, Any]) -> set[str]:
    """Every receiver the route tree names."""
    names = {str(route["receiver"])} if route.get("receiver") else set()
    for child in route.get("routes") or []:
        names |= route_receivers(child)
    return names
