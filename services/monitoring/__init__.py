"""Monitoring: configuration rendering for Prometheus and Alertmanager, the alert listener,
and the static checks that keep rules, routes and dashboards honest (docs/ops/)."""
