"""Grafana-managed alert rules as code, in Grafana's file provisioning format: one ClickHouse
query per rule, reduced per series and compared with a threshold from the agent's config
(`alerts`). The queries use the same macros as the panels, so the tests run them against the
engine like the panels (tests/test_dashboards.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from watchkeeper.agent.config import AlertRulesConfig
from watchkeeper.dashboards.clickhouse import DATASOURCE_UID, PLUGIN

GROUP = "watchkeeper"
EXPRESSIONS = "__expr__"  # Grafana's server-side expressions data source


@dataclass(frozen=True)
class Rule:
    uid: str
    title: str
    sql: str  # one row per series: label columns, then `value`
    threshold: float
    summary: str
    severity: str = "warning"
    window_minutes: int | None = None  # the span it reads; None: the config's window_minutes


def rules(database: str, config: AlertRulesConfig) -> list[Rule]:
    samples = f"FROM {database}.samples WHERE $__timeFilter(ts)"
    return [
        Rule("wk-error-rate", "LLM error rate",
             f"SELECT service, countIf(status = 'error') / count() AS value {samples} "
             "GROUP BY service HAVING count() >= 20",
             config.error_rate,
             f"More than {config.error_rate:.0%} of {{{{ $labels.service }}}}'s LLM calls "
             "failed (at least 20 calls)."),
        Rule("wk-latency-p95", "LLM latency p95",
             f"SELECT service, quantile(0.95)(duration_ms) AS value {samples} GROUP BY service",
             config.latency_p95_ms,
             f"{{{{ $labels.service }}}}'s 95th percentile call duration is above "
             f"{config.latency_p95_ms:g} ms."),
        Rule("wk-cost-per-hour", "LLM cost per hour",
             f"SELECT service, sum(cost_usd) AS value {samples} AND cost_usd IS NOT NULL "
             "GROUP BY service",
             config.cost_per_hour_usd,
             f"{{{{ $labels.service }}}}'s priced LLM calls cost more than "
             f"${config.cost_per_hour_usd:g} in the last 60 minutes.",
             window_minutes=60),  # per hour: one hour, whatever the config's window
        Rule("wk-flag-rate", "Watcher flag rate",
             f"SELECT service, watcher, label, countIf(flagged) / count() AS value "
             f"FROM {database}.scores WHERE $__timeFilter(ts) AND error = '' "
             "GROUP BY service, watcher, label HAVING count() >= 20",
             config.flag_rate,
             f"{{{{ $labels.watcher }}}} flags more than {config.flag_rate:.0%} of "
             "{{ $labels.service }}'s samples for {{ $labels.label }}."),
        Rule("wk-drift-alert", "Drift or bias detected",
             f"SELECT job, scope, toFloat64(countIf(alert)) AS value "
             f"FROM {database}.detector_runs WHERE $__timeFilter(window_end) "
             "GROUP BY job, scope",
             0.0,
             "The scheduled job {{ $labels.job }} found a significant change in "
             "{{ $labels.scope }} (see the Drift & bias dashboard and the review queue).",
             severity="critical"),
    ]


def provisioning(database: str, config: AlertRulesConfig, folder: str) -> dict[str, Any]:
    """The file Grafana reads from provisioning/alerting/ (apiVersion 1)."""
    return {"apiVersion": 1, "groups": [{
        "orgId": 1, "name": GROUP, "folder": folder, "interval": config.evaluate_every,
        "rules": [_rule(rule, config) for rule in rules(database, config)]}]}


def _rule(rule: Rule, config: AlertRulesConfig) -> dict[str, Any]:
    seconds = (rule.window_minutes or config.window_minutes) * 60
    query = {"refId": "A", "datasource": {"type": PLUGIN, "uid": DATASOURCE_UID},
             "editorType": "sql", "queryType": "table", "format": 1, "rawSql": rule.sql}
    return {
        "uid": rule.uid, "title": rule.title, "condition": "C",
        "data": [
            {"refId": "A", "datasourceUid": DATASOURCE_UID,
             "relativeTimeRange": {"from": seconds, "to": 0}, "model": query},
            {"refId": "B", "datasourceUid": EXPRESSIONS, "relativeTimeRange": {"from": 0, "to": 0},
             "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last",
                       "settings": {"mode": "dropNN"}}},
            {"refId": "C", "datasourceUid": EXPRESSIONS, "relativeTimeRange": {"from": 0, "to": 0},
             "model": {"refId": "C", "type": "threshold", "expression": "B",
                       "conditions": [{"evaluator": {"type": "gt",
                                                     "params": [rule.threshold]}}]}},
        ],
        "noDataState": "OK", "execErrState": "Error", "for": config.pending,
        "annotations": {"summary": rule.summary},
        "labels": {"severity": rule.severity, "source": "watchkeeper"},
        "isPaused": False,
    }
