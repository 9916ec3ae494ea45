"""Settings of the monitoring pieces the platform runs itself: the alert listener and the
notification channels rendered into Alertmanager's configuration.

Alertmanager 0.25 does not expand environment variables in its configuration file, so these
values are read here and written into a rendered copy (services/monitoring/config.py).
"""

from __future__ import annotations

from pydantic import SecretStr, field_validator, model_validator

from services.core.settings import CoreSettings, env_field
from services.monitoring.durations import parse_duration

DEFAULT_LISTEN_PORT = 9095
# pyproject.toml names no public repository; this is the default until it does.
DEFAULT_RUNBOOK_BASE_URL = "https://github.com/local-ai-suite/local-ai-suite/blob/main"


class MonitoringSettings(CoreSettings):
    alerts_listen_port: int = env_field(
        "ALERTS_LISTEN_PORT",
        default=DEFAULT_LISTEN_PORT,
        ge=0,
        le=65535,
        description="Port of `ai-suite alerts listen` (the default webhook receiver).",
    )
    alerts_webhook_url: str | None = env_field(
        "ALERTS_WEBHOOK_URL",
        default=None,
        description="Where Alertmanager posts every alert; default the local listener.",
    )
    alerts_watchdog_timeout: float = env_field(
        "ALERTS_WATCHDOG_TIMEOUT_SECONDS",
        default=300.0,
        ge=0,
        description="`ai-suite alerts listen` reports when no Watchdog arrived for this long"
        " (Alertmanager re-sends it every minute); 0 turns the dead man's switch off.",
    )
    runbook_base: str | None = env_field(
        "MONITORING_RUNBOOK_BASE_URL",
        default=None,
        description="Base of the absolute runbook links in alerts and dashboards"
        " (the repository's blob URL, or file:// of a checkout).",
    )
    grafana_url: str | None = env_field(
        "GRAFANA_URL",
        default=None,
        description="Grafana as a browser reaches it, for dashboard links in alerts;"
        " default http://<AI_SUITE_HOST>:3000.",
    )
    slack_webhook_url: SecretStr | None = env_field(
        "ALERTS_SLACK_WEBHOOK_URL",
        default=None,
        description="Slack incoming-webhook URL for critical and warning alerts (a credential: "
        "never logged).",
    )
    slack_channel: str | None = env_field(
        "ALERTS_SLACK_CHANNEL",
        default=None,
        description="Slack channel for those alerts; default the webhook's own.",
    )
    email_to: str | None = env_field(
        "ALERTS_EMAIL_TO",
        default=None,
        description="E-mail address for critical alerts (with ALERTS_EMAIL_FROM and "
        "ALERTS_SMTP_SMARTHOST: all three or none).",
    )
    email_from: str | None = env_field(
        "ALERTS_EMAIL_FROM", default=None, description="Sender address of alert e-mails."
    )
    smtp_smarthost: str | None = env_field(
        "ALERTS_SMTP_SMARTHOST",
        default=None,
        description="SMTP server for alert e-mails, host:port.",
    )
    smtp_username: str | None = env_field(
        "ALERTS_SMTP_USERNAME",
        default=None,
        description="SMTP login of the smarthost, if it needs one.",
    )
    smtp_password: SecretStr | None = env_field(
        "ALERTS_SMTP_PASSWORD", default=None, description="SMTP password (never logged)."
    )
    smtp_require_tls: bool = env_field(
        "ALERTS_SMTP_REQUIRE_TLS", default=True, description="Require STARTTLS to the smarthost."
    )

    # Test knobs (e2e fault injection): shorten the real rules and routes, never copy them.
    for_limit: str | None = env_field(
        "MONITORING_FOR_LIMIT", default=None, description="Cap every alert's `for` (e.g. 5s)."
    )
    scrape_interval: str | None = env_field(
        "MONITORING_SCRAPE_INTERVAL",
        default=None,
        description="Replace Prometheus' global scrape interval (a Prometheus duration, e.g. 1s; "
        "tests).",
    )
    evaluation_interval: str | None = env_field(
        "MONITORING_EVALUATION_INTERVAL",
        default=None,
        description="Replace Prometheus' global rule evaluation interval (tests).",
    )
    group_wait: str | None = env_field(
        "ALERTMANAGER_GROUP_WAIT",
        default=None,
        description="Replace group_wait of every Alertmanager route (tests).",
    )
    group_interval: str | None = env_field(
        "ALERTMANAGER_GROUP_INTERVAL",
        default=None,
        description="Replace group_interval of every Alertmanager route (tests).",
    )
    repeat_interval: str | None = env_field(
        "ALERTMANAGER_REPEAT_INTERVAL",
        default=None,
        description="Replace repeat_interval of every Alertmanager route (tests).",
    )

    @field_validator(
        "for_limit",
        "scrape_interval",
        "evaluation_interval",
        "group_wait",
        "group_interval",
        "repeat_interval",
    )
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("alerts_webhook_url", "slack_webhook_url")
    @classmethod
    def _http_url(cls, value: str | SecretStr | None) -> str | SecretStr | None:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is not None and not raw.startswith(("http://", "https://")):
            # Never echo the value: a Slack webhook URL is a credential.
            raise ValueError("expected an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _email_complete(self) -> MonitoringSettings:
        email = {
            "ALERTS_EMAIL_TO": self.email_to,
            "ALERTS_EMAIL_FROM": self.email_from,
            "ALERTS_SMTP_SMARTHOST": self.smtp_smarthost,
        }
        given = [name for name, value in email.items() if value]
        if given and len(given) != len(email):
            missing = ", ".join(name for name, value in email.items() if not value)
            raise ValueError(f"e-mail alerts need {', '.join(email)}; missing: {missing}")
        if self.smtp_smarthost and ":" not in self.smtp_smarthost:
            raise ValueError("ALERTS_SMTP_SMARTHOST must be host:port, e.g. smtp.example.org:587")
        return self

    @property
    def runbook_base_url(self) -> str:
        # One base for alerts and dashboards: the dashboards generator (dashgen/links.py on
        # main) reads the same variable with the same default.
        return self.runbook_base or DEFAULT_RUNBOOK_BASE_URL

    @property
    def grafana_link_url(self) -> str:
        return self.grafana_url or f"http://{self.host}:3000"

    @property
    def listener_url(self) -> str:
        """The webhook URL Alertmanager posts to."""
        return self.alerts_webhook_url or (f"http://{self.host}:{self.alerts_listen_port}/alerts")

    @property
    def route_timings(self) -> dict[str, str]:
        """The Alertmanager route timings set in the environment (tests)."""
        timings = {
            "group_wait": self.group_wait,
            "group_interval": self.group_interval,
            "repeat_interval": self.repeat_interval,
        }
        return {key: value for key, value in timings.items() if value}

    @property
    def email_enabled(self) -> bool:
        return bool(self.email_to)

    @property
    def monitoring_dir(self) -> str:
        return str(self.data_dir / "monitoring")
