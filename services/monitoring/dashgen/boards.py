"""The five dashboards, one function each. Panel ids and dashboard uids are stable: alert
annotations link to ``/d/<uid>?viewPanel=<id>`` and the live-data test keys panels by id.

Template variables (all multi-value with an "All" of ``.*``, so an unfiltered dashboard shows
what it did before variables existed): ``service`` where a panel mixes services,
``instance`` where the series still carry the scrape target's instance label (raw metrics;
recording rules aggregate it away, so they are filtered by service only), ``model`` on the
gateway's per-model panels.
"""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import dashboard as dm

from services.monitoring.dashgen.links import (
    MONITORING_GUIDE,
    OBSERVABILITY_DOC,
    alert_runbook_url,
    alerts_for,
    doc_url,
)
from services.monitoring.dashgen.panels import (
    PROMETHEUS,
    Pos,
    Q,
    bars,
    dial,
    grid,
    link,
    log_lines,
    note,
    row,
    series,
    single,
)

TAG = "ai-suite"
PLATFORM_SERVICES = "gateway|rag|mcp"


def query_variable(name: str, label: str, query: str) -> dash.QueryVariable:
    return (
        dash.QueryVariable(name)
        .label(label)
        .datasource(PROMETHEUS)
        .query(query)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


def service_variable(query: str = f'label_values(up{{job=~"{PLATFORM_SERVICES}"}}, service)'):
    return query_variable("service", "Service", query)


def instance_variable(job: str) -> dash.QueryVariable:
    return query_variable("instance", "Instance", f'label_values(up{{job=~"{job}"}}, instance)')


def model_variable() -> dash.QueryVariable:
    return query_variable("model", "Model", "label_values(llm_requests_total, model)")


class Board:
    """Collects a dashboard's panels; ``alert_links`` adds each alert's runbook to its panel."""

    def __init__(self, uid: str, title: str, description: str, base_url: str) -> None:
        self.uid = uid
        self.base_url = base_url
        self.builder = (
            dash.Dashboard(f"Local AI Suite — {title}")
            .uid(uid)
            .description(description)
            .tags([TAG])
            .timezone("browser")
            .readonly()
            .tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .refresh("30s")
            .time("now-1h", "now")
            .version(1)
            .links(
                [
                    dash.DashboardLink("Local AI Suite")
                    .type(dm.DashboardLinkType.DASHBOARDS)
                    .tags([TAG])
                    .as_dropdown(True)
                    .keep_time(True)
                    .include_vars(True),
                    link("Runbooks", doc_url(base_url, MONITORING_GUIDE)),
                    link("Observability", doc_url(base_url, OBSERVABILITY_DOC)),
                ]
            )
        )

    def alert_links(self, panel_id: int) -> list[dash.DashboardLink]:
        return [
            link(f"Runbook: {alert}", alert_runbook_url(self.base_url, alert))
            for alert in alerts_for(self.uid, panel_id)
        ]

    def variables(self, *variables: dash.QueryVariable) -> Board:
        for variable in variables:
            self.builder = self.builder.with_variable(variable)
        return self

    def add(self, *panels) -> Board:  # type: ignore[no-untyped-def]
        for panel in panels:
            if isinstance(panel, dash.Row):
                self.builder = self.builder.with_row(panel)
            else:
                self.builder = self.builder.with_panel(panel)
        return self


def overview(base_url: str) -> Board:
    b = Board(
        "ai-suite-overview",
        "system overview",
        "Is everything up, how busy is it, does it fail, is it slow. Start here.",
        base_url,
    ).variables(service_variable(), instance_variable("$service"))
    svc = 'service=~"$service"'
    mine = f'job=~"{PLATFORM_SERVICES}", {svc}, instance=~"$instance"'
    return b.add(
        note(
            1,
            Pos(0, 0, 24, 2),
            f"Targets, traffic, errors and latency of every service. Alerts and their runbooks: "
            f"[MONITORING_GUIDE]({doc_url(base_url, MONITORING_GUIDE)}). Detail: the gateway, "
            "security, MCP and RAG dashboards.",
        ),
        single(
            2,
            "Scrape targets",
            Pos(0, 2, 16, 4),
            Q(f'up{{{svc}, instance=~"$instance"}}', "{{job}}"),
            steps=[(None, "red"), (1, "green")],
            names={"0": ("DOWN", "red"), "1": ("UP", "green")},
            links=b.alert_links(2),
        ),
        single(
            3,
            "Firing alerts",
            Pos(16, 2, 8, 4),
            Q('count(ALERTS{alertstate="firing"}) or vector(0)'),
            steps=[(None, "green"), (1, "red")],
        ),
        series(
            4,
            "Requests per second by service",
            Pos(0, 6, 12, 8),
            Q(f"service:http_requests:rate5m{{{svc}}}", "{{service}}"),
            unit="reqps",
        ),
        series(
            5,
            "5xx ratio by service",
            Pos(12, 6, 12, 8),
            Q(f"service:http_requests_5xx:ratio_rate5m{{{svc}}}", "{{service}}"),
            unit="percentunit",
            minimum=0,
            links=b.alert_links(5),
        ),
        series(
            6,
            "p95 latency by service",
            Pos(0, 14, 12, 8),
            Q(f"service:http_request_duration_seconds:p95_5m{{{svc}}}", "{{service}} p95"),
            unit="s",
            links=b.alert_links(6),
        ),
        series(
            7,
            "p50 latency by service",
            Pos(12, 14, 12, 8),
            Q(f"service:http_request_duration_seconds:p50_5m{{{svc}}}", "{{service}} p50"),
            unit="s",
        ),
        series(
            8,
            "Resident memory",
            Pos(0, 22, 12, 8),
            Q(f"process_resident_memory_bytes{{{mine}}}", "{{service}} {{instance}}"),
            unit="bytes",
        ),
        series(
            9,
            "CPU",
            Pos(12, 22, 12, 8),
            Q(
                f"rate(process_cpu_seconds_total{{{mine}}}[$__rate_interval])",
                "{{service}} {{instance}}",
            ),
            unit="percentunit",
        ),
        grid(10, "Firing alerts", Pos(0, 30, 24, 6), Q('ALERTS{alertstate="firing"}')),
        log_lines(
            11,
            "Errors of every service",
            Pos(0, 36, 24, 10),
            '{level=~"ERROR|CRITICAL", service=~"$service"}',
        ),
        series(
            12,
            "Restarts by ai-suite up",
            Pos(0, 46, 24, 8),
            # Exposed by the gateway for the supervisor of `ai-suite up` (not in containers).
            # A service that crashes and comes back within ServiceDown's `for` shows only here.
            Q(
                f"increase(ai_suite_service_restarts_total{{{svc}}}[$__rate_interval])",
                "{{service}} {{reason}}",
            ),
            unit="short",
            minimum=0,
            description="Restarts of each service by the supervisor of `ai-suite up` (crash:"
            " it exited or never became ready; requested: `ai-suite restart`).",
        ),
    )


def gateway(base_url: str) -> Board:
    b = Board(
        "ai-suite-gateway",
        "gateway & LLM backends",
        "OpenAI-compatible gateway: routes, inference backends, retries and circuit breakers.",
        base_url,
    ).variables(instance_variable("gateway"), model_variable())
    inst = 'instance=~"$instance"'
    model = 'model=~"$model"'
    return b.add(
        row(1, "Gateway HTTP", 0),
        series(
            2,
            "Requests by route and status",
            Pos(0, 1, 12, 8),
            Q(
                "sum by (route, status) (rate(http_requests_total"
                f'{{service="gateway", {inst}}}[$__rate_interval]))',
                "{{route}} {{status}}",
            ),
            unit="reqps",
        ),
        series(
            3,
            "Latency",
            Pos(12, 1, 12, 8),
            Q('service:http_request_duration_seconds:p95_5m{service="gateway"}', "p95"),
            Q('service:http_request_duration_seconds:p50_5m{service="gateway"}', "p50"),
            unit="s",
        ),
        row(4, "LLM backends", 9),
        series(
            5,
            "LLM requests by backend and status",
            Pos(0, 10, 12, 8),
            Q("backend:llm_requests:rate5m", "{{backend}} {{status}}"),
            unit="reqps",
        ),
        series(
            6,
            "LLM p95 duration by backend",
            Pos(12, 10, 12, 8),
            Q("backend:llm_request_duration_seconds:p95_5m", "{{backend}}"),
            unit="s",
        ),
        series(
            7,
            "Failed upstream attempts by backend and reason",
            Pos(0, 18, 12, 8),
            Q(
                "sum by (backend, reason) (rate(llm_upstream_errors_total"
                f"{{{inst}}}[$__rate_interval]))",
                "{{backend}} {{reason}}",
            ),
            unit="reqps",
            description="Every failed attempt, including those a retry or fallback recovered.",
            links=b.alert_links(7),
        ),
        single(
            8,
            "Circuit breakers",
            Pos(12, 18, 12, 8),
            Q(f"llm_circuit_breaker_state{{{inst}}}", "{{backend}}"),
            steps=[(None, "green"), (1, "red")],
            names={
                "0": ("closed", "green"),
                "1": ("open", "red"),
                "2": ("half-open", "orange"),
            },
            links=b.alert_links(8),
        ),
        bars(
            9,
            "Requests by model (last hour)",
            Pos(0, 26, 12, 8),
            Q(f"sum by (model) (increase(llm_requests_total{{{model}}}[1h]))", "{{model}}"),
        ),
        grid(
            10,
            "Requests that found no backend (last hour)",
            Pos(12, 26, 12, 8),
            Q(f'sum by (model) (increase(llm_requests_total{{backend="none", {model}}}[1h]))'),
            description="Every backend of the model failed or had its breaker open: the client "
            "got 503.",
        ),
        series(
            12,
            "Tokens per second by model and kind",
            Pos(0, 34, 24, 8),
            Q(
                f"sum by (model, kind) (rate(llm_tokens_total{{{model}}}[$__rate_interval]))",
                "{{model}} {{kind}}",
            ),
            unit="short",
        ),
        log_lines(
            11,
            "Gateway warnings and errors",
            Pos(0, 42, 24, 10),
            '{service="gateway", level=~"WARNING|ERROR|CRITICAL"}',
        ),
    )


def security(base_url: str) -> Board:
    b = Board(
        "ai-suite-security",
        "RBAC & approvals",
        "Authentication, permission checks, the audit log and tool approvals.",
        base_url,
    ).variables(service_variable())
    svc = 'service=~"$service"'
    return b.add(
        row(1, "Access control", 0),
        series(
            2,
            "Permission checks by result",
            Pos(0, 1, 12, 8),
            Q(f"service:rbac_permission_checks:rate5m{{{svc}}}", "{{service}} {{result}}"),
            unit="reqps",
        ),
        series(
            3,
            "Denials by role",
            Pos(12, 1, 12, 8),
            Q(
                "sum by (service, role) (rate(rbac_permission_checks_total"
                f'{{result="denied", {svc}}}[$__rate_interval]))',
                "{{service}} {{role}}",
            ),
            unit="reqps",
        ),
        series(
            4,
            "Authentication failures by reason",
            Pos(0, 9, 12, 8),
            Q(f"sum by (reason) (service:auth_failures:rate5m{{{svc}}})", "{{reason}}"),
            unit="reqps",
            links=b.alert_links(4),
        ),
        series(
            5,
            "Denial ratio",
            Pos(12, 9, 12, 8),
            Q(f"service:rbac_denials:ratio_rate5m{{{svc}}}", "{{service}}"),
            unit="percentunit",
            minimum=0,
            links=b.alert_links(5),
        ),
        row(6, "Audit log", 17),
        single(
            7,
            "Audit writes (last hour)",
            Pos(0, 18, 8, 4),
            Q("sum(increase(audit_writes_total[1h]))"),
        ),
        single(
            8,
            "Audit write failures (last 24 h)",
            Pos(8, 18, 4, 4),
            Q("sum(increase(audit_write_failures_total[24h]))"),
            steps=[(None, "green"), (1, "red")],
            links=b.alert_links(8),
        ),
        single(
            19,
            "Tool calls interrupted by a restart (last 24 h)",
            Pos(12, 18, 4, 4),
            Q("sum(increase(audit_recovered_calls_total[24h]))"),
            steps=[(None, "green"), (1, "orange")],
        ),
        single(
            20,
            "Audit rows archived (last 24 h)",
            Pos(16, 18, 4, 4),
            Q("sum(increase(audit_archived_rows_total[24h])) or vector(0)"),
            description="Rows past AUDIT_RETENTION_DAYS moved to data_dir/audit-archive.",
        ),
        single(
            21,
            "Audit archive failures (last 24 h)",
            Pos(20, 18, 4, 4),
            Q("sum(increase(audit_archive_failures_total[24h])) or vector(0)"),
            steps=[(None, "green"), (1, "red")],
            links=b.alert_links(21),
        ),
        row(9, "Approvals", 22),
        single(
            10,
            "Pending approvals",
            Pos(0, 23, 8, 4),
            Q("sum(approvals_pending)"),
            steps=[(None, "green"), (1, "orange"), (11, "red")],
            links=b.alert_links(10),
        ),
        single(
            11,
            "Expired (last 24 h)",
            Pos(8, 23, 8, 4),
            Q('sum(increase(approval_requests_total{status="expired"}[24h])) or vector(0)'),
            steps=[(None, "green"), (1, "red")],
            links=b.alert_links(11),
        ),
        single(
            12,
            "Decided (last 24 h)",
            Pos(16, 23, 8, 4),
            Q(
                'sum(increase(approval_requests_total{status=~"approved|rejected"}[24h]))'
                " or vector(0)"
            ),
        ),
        series(
            13,
            "Approval transitions",
            Pos(0, 27, 12, 8),
            Q("service:approval_requests:rate5m", "{{status}}"),
            unit="reqps",
        ),
        series(
            14,
            "Time to decision",
            Pos(12, 27, 12, 8),
            Q(
                "histogram_quantile(0.5, sum by (le) "
                "(rate(approval_wait_seconds_bucket[$__rate_interval])))",
                "p50",
            ),
            Q(
                "histogram_quantile(0.95, sum by (le) "
                "(rate(approval_wait_seconds_bucket[$__rate_interval])))",
                "p95",
            ),
            unit="s",
        ),
        log_lines(
            15,
            "Approval and permission log lines",
            Pos(0, 35, 24, 10),
            '{service=~"gateway|mcp"} |~ "(?i)approv|denied|forbidden"',
        ),
        series(
            16,
            "Requests refused before work (size, JSON depth, stalled body)",
            Pos(0, 45, 24, 8),
            Q(
                "sum by (service, reason) (rate(http_requests_refused_total"
                f"{{{svc}}}[$__rate_interval]))",
                "{{service}} {{reason}}",
            ),
            unit="reqps",
        ),
        series(
            17,
            "Per-key fairness refusals (429)",
            Pos(0, 53, 12, 8),
            Q(
                f"sum by (service, limit) (rate(rate_limited_total{{{svc}}}[$__rate_interval]))",
                "{{service}} {{limit}}",
            ),
            unit="reqps",
        ),
        series(
            18,
            "Calls holding a concurrency slot",
            Pos(12, 53, 12, 8),
            Q(f"sum by (service) (fairness_in_flight{{{svc}}})", "{{service}}"),
            unit="short",
        ),
    )


def mcp(base_url: str) -> Board:
    b = Board(
        "ai-suite-mcp",
        "MCP tools",
        "MCP tool server: calls by tool and outcome, durations, denials and rate limits.",
        base_url,
    ).variables(instance_variable("mcp"))
    inst = 'instance=~"$instance"'
    return b.add(
        series(
            1,
            "Tool calls by tool and status",
            Pos(0, 0, 12, 8),
            Q("tool:mcp_tool_executions:rate5m", "{{tool}} {{status}}"),
            unit="reqps",
        ),
        series(
            2,
            "Tool p95 duration",
            Pos(12, 0, 12, 8),
            Q("tool:mcp_tool_duration_seconds:p95_5m", "{{tool}}"),
            unit="s",
        ),
        single(
            3,
            "Denied or rate-limited calls (last hour)",
            Pos(0, 8, 12, 4),
            Q(
                "sum(increase(mcp_tool_executions_total"
                f'{{status=~"denied|rate_limited", {inst}}}[1h])) or vector(0)'
            ),
            steps=[(None, "green"), (1, "orange")],
        ),
        single(
            4,
            "Failed calls (last hour)",
            Pos(12, 8, 12, 4),
            Q(
                "sum(increase(mcp_tool_executions_total"
                f'{{status=~"error|timeout", {inst}}}[1h])) or vector(0)'
            ),
            steps=[(None, "green"), (1, "red")],
        ),
        grid(
            5,
            "Tool calls (last hour)",
            Pos(0, 12, 12, 8),
            Q(f"sum by (tool, status) (increase(mcp_tool_executions_total{{{inst}}}[1h]))"),
        ),
        series(
            6,
            "MCP HTTP requests by route and status",
            Pos(12, 12, 12, 8),
            Q(
                "sum by (route, status) (rate(http_requests_total"
                f'{{service="mcp", {inst}}}[$__rate_interval]))',
                "{{route}} {{status}}",
            ),
            unit="reqps",
        ),
        log_lines(7, "MCP server log", Pos(0, 20, 24, 10), '{service="mcp"}'),
    )


def rag(base_url: str) -> Board:
    b = Board(
        "ai-suite-rag",
        "RAG",
        "Retrieval service: queries, latency, embeddings, the query cache and the vector store.",
        base_url,
    ).variables(instance_variable("rag"))
    inst = 'instance=~"$instance"'
    return b.add(
        series(
            1,
            "Queries by status",
            Pos(0, 0, 12, 8),
            Q("service:rag_queries:rate5m", "{{status}}"),
            unit="reqps",
        ),
        series(
            2,
            "Query p95 duration",
            Pos(12, 0, 12, 8),
            Q("service:rag_query_duration_seconds:p95_5m", "p95"),
            unit="s",
        ),
        series(
            3,
            "Embedding p95 by backend",
            Pos(0, 8, 12, 8),
            Q(
                "histogram_quantile(0.95, sum by (backend, le) (rate("
                f"embedding_duration_seconds_bucket{{{inst}}}[$__rate_interval])))",
                "{{backend}}",
            ),
            unit="s",
        ),
        dial(
            4,
            "Query cache hit ratio",
            Pos(12, 8, 12, 8),
            Q("service:rag_cache_hits:ratio_rate5m"),
            unit="percentunit",
            steps=[(None, "orange"), (0.3, "green")],
        ),
        series(
            5,
            "Chunks indexed and removed",
            Pos(0, 16, 12, 8),
            Q(
                "sum by (operation) (rate(rag_index_chunks_total" f"{{{inst}}}[$__rate_interval]))",
                "{{operation}}",
            ),
            unit="cps",
        ),
        series(
            6,
            "Vector store errors by operation",
            Pos(12, 16, 12, 8),
            Q("service:vector_search_errors:rate5m", "{{operation}}"),
            unit="reqps",
            links=b.alert_links(6),
        ),
        bars(
            7,
            "Queries by collection (last hour)",
            Pos(0, 24, 24, 6),
            Q(
                f"sum by (collection) (increase(rag_queries_total{{{inst}}}[1h]))",
                "{{collection}}",
            ),
        ),
        log_lines(8, "RAG service log", Pos(0, 30, 24, 10), '{service="rag"}'),
    )


# File name (without .json) -> builder. One entry per dashboard Grafana provisions.
DASHBOARDS: dict[str, Callable[[str], Board]] = {
    "overview": overview,
    "gateway": gateway,
    "security": security,
    "mcp": mcp,
    "rag": rag,
}
