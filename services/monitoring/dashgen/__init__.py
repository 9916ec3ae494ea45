"""Dashboards as code: every Grafana dashboard of ``docker/grafana/dashboards`` is built here
with Grafana's typed library (grafana-foundation-sdk) and written as JSON.

A build tool, not part of a running service: only ``make dashboards`` and the tests import
it, which is why the SDK is a dev dependency. Modules: ``links`` (runbook base URL, alert ->
panel table), ``panels`` (the panel kinds the dashboards use), ``boards`` (one function per
dashboard), ``render`` (JSON text, write, compare), ``__main__`` (the command).
"""
