"""The panel kinds the dashboards use, built with grafana-foundation-sdk's typed builders.

Each helper fixes the options every panel of that kind shares (legend, tooltip, reduction),
so a dashboard module only says what differs: title, place, queries, unit, thresholds.
Positions are explicit (the SDK would otherwise flow panels left to right) because the
layout is part of what reviewers compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    gauge,
    logs,
    loki,
    prometheus,
    stat,
    table,
    text,
    timeseries,
)
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm
from grafana_foundation_sdk.models import text as tm

# The uids docker/grafana/provisioning/datasources/datasources.yml creates.
PROMETHEUS = dm.DataSourceRef(type_val="prometheus", uid="prometheus")
LOKI = dm.DataSourceRef(type_val="loki", uid="loki")


@dataclass(frozen=True)
class Pos:
    x: int
    y: int
    w: int
    h: int

    def grid(self) -> dm.GridPos:
        return dm.GridPos(x=self.x, y=self.y, w=self.w, h=self.h)


@dataclass(frozen=True)
class Q:
    """One PromQL target: expression, legend, and whether it is an instant query."""

    expr: str
    legend: str | None = None
    instant: bool = False
    table: bool = False


def link(title: str, url: str, *, new_tab: bool = True) -> dash.DashboardLink:
    return (
        dash.DashboardLink(title)
        .type(dm.DashboardLinkType.LINK)
        .url(url)
        .target_blank(new_tab)
        .keep_time(not new_tab)
        .include_vars(not new_tab)
    )


def _prom_targets(queries: Sequence[Q]) -> list[Builder[object]]:
    targets: list[Builder[object]] = []
    for ref, q in zip("ABCDEFGH", queries, strict=False):
        target = prometheus.Dataquery().ref_id(ref).datasource(PROMETHEUS).expr(q.expr)
        if q.legend is not None:
            target = target.legend_format(q.legend)
        target = target.instant() if q.instant or q.table else target.range()
        if q.table:
            target = target.format(pm.PromQueryFormat.TABLE)
        targets.append(target)
    return targets


def _common(builder, pid: int, title: str, pos: Pos, description: str, links: Sequence):  # type: ignore[no-untyped-def]
    builder = builder.id(pid).title(title).grid_pos(pos.grid())
    if description:
        builder = builder.description(description)
    if links:
        builder = builder.links(list(links))
    return builder


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for value, color in steps])
    )


def value_names(names: dict[str, tuple[str, str]]) -> list[dm.ValueMapping]:
    """Value -> (text, color), e.g. a breaker's 0/1/2 as closed/open/half-open."""
    return [
        dm.ValueMap(
            options={k: dm.ValueMappingResult(text=t, color=c) for k, (t, c) in names.items()}
        )
    ]


def _last_value() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def row(pid: int, title: str, y: int) -> dash.Row:
    return dash.Row(title).id(pid).grid_pos(dm.GridPos(x=0, y=y, w=24, h=1))


def series(
    pid: int,
    title: str,
    pos: Pos,
    *queries: Q,
    unit: str,
    minimum: float | None = None,
    description: str = "",
    links: Sequence[dash.DashboardLink] = (),
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .datasource(PROMETHEUS)
        .targets(_prom_targets(queries))
        .unit(unit)
        .legend(
            common.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common.VizTooltipOptions()
            .mode(cm.TooltipDisplayMode.MULTI)
            .sort(cm.SortOrder.DESCENDING)
        )
    )
    if minimum is not None:
        panel = panel.min(minimum)
    return _common(panel, pid, title, pos, description, links)


def single(
    pid: int,
    title: str,
    pos: Pos,
    query: Q,
    *,
    steps: Sequence[tuple[float | None, str]] = (),
    names: dict[str, tuple[str, str]] | None = None,
    description: str = "",
    links: Sequence[dash.DashboardLink] = (),
) -> stat.Panel:
    panel = (
        stat.Panel()
        .datasource(PROMETHEUS)
        .targets(_prom_targets([Q(query.expr, query.legend or "", instant=True)]))
        .reduce_options(_last_value())
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
    )
    if steps:
        panel = panel.thresholds(thresholds(*steps))
    if names:
        panel = panel.mappings(value_names(names))
    return _common(panel, pid, title, pos, description, links)


def bars(pid: int, title: str, pos: Pos, query: Q) -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .datasource(PROMETHEUS)
        .targets(_prom_targets([Q(query.expr, query.legend, instant=True)]))
        .orientation(cm.VizOrientation.HORIZONTAL)
        .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(_last_value())
    )
    return _common(panel, pid, title, pos, "", ())


def dial(
    pid: int,
    title: str,
    pos: Pos,
    query: Q,
    *,
    unit: str,
    steps: Sequence[tuple[float | None, str]],
) -> gauge.Panel:
    panel = (
        gauge.Panel()
        .datasource(PROMETHEUS)
        .targets(_prom_targets([Q(query.expr, query.legend, instant=True)]))
        .reduce_options(_last_value())
        .show_threshold_markers(True)
        .unit(unit)
        .min(0)
        .max(1)
        .thresholds(thresholds(*steps))
    )
    return _common(panel, pid, title, pos, "", ())


def grid(pid: int, title: str, pos: Pos, query: Q, *, description: str = "") -> table.Panel:
    panel = (
        table.Panel()
        .datasource(PROMETHEUS)
        .targets(_prom_targets([Q(query.expr, query.legend, table=True)]))
        .show_header(True)
    )
    return _common(panel, pid, title, pos, description, ())


def log_lines(
    pid: int, title: str, pos: Pos, logql: str, *, links: Sequence[dash.DashboardLink] = ()
) -> logs.Panel:
    panel = (
        logs.Panel()
        .datasource(LOKI)
        .with_target(loki.Dataquery().ref_id("A").datasource(LOKI).expr(logql).query_type("range"))
        .show_time(True)
        .wrap_log_message(True)
        .sort_order(cm.LogsSortOrder.DESCENDING)
        .enable_log_details(True)
        .prettify_log_message(False)
    )
    return _common(panel, pid, title, pos, "", links)


def note(pid: int, pos: Pos, markdown: str) -> text.Panel:
    panel = text.Panel().mode(tm.TextMode.MARKDOWN).content(markdown)
    return _common(panel, pid, "", pos, "", ())
