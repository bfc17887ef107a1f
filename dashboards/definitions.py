"""The dashboards: what a platform or ML team looks at every day, one per question.

- Overview: how much LLM traffic, how fast, how many errors and tokens, per service and model.
- Cost: what the calls cost, per service, model, environment and user, and which calls have
  no price.
- Quality & safety: what the watchers flag, how scores move, what waits in the review queue,
  what end users say.
- Drift & bias: every detector run, its p-value against its threshold, and the alerts.
- Users & conversations: who uses the LLM apps, how much, and whose calls were flagged.

Every query reads the tables the migrations create (agent/store/migrations) and filters by the
dashboard's service / environment / model variables; tests run each one against a real store.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from grafana_foundation_sdk.builders import common, dashboard, stat, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.common import (
    BigValueGraphMode,
    GraphDrawStyle,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
)

from watchkeeper.dashboards.clickhouse import DATASOURCE, Query

TAGS = ["watchkeeper", "llm"]
# Grafana expands a multi-value variable with singlequote into 'a','b'; "All" selects every
# value the variable query found.
SAMPLE_FILTER = ("service IN (${service:singlequote}) "
                 "AND environment IN (${environment:singlequote}) "
                 "AND request_model IN (${model:singlequote})")
SERVICE_FILTER = "service IN (${service:singlequote})"
# The labels of the safety watchers (prompt-injection, prompt-leak): attacks on the app.
SAFETY_LABELS = "('injection', 'leak')"
# A sample's cost_usd (migration 0009) is NULL without a price or token counts, never 0: sums
# and means are over priced calls, and the calls a price is missing for are counted apart.
TOKENS = "(input_tokens IS NOT NULL OR output_tokens IS NOT NULL)"
UNPRICED = f"price_model = '' AND {TOKENS}"
USD = [models.DynamicConfigValue(id_val="unit", value="currencyUSD")]
Panel = Builder[models.Panel]


def _variable(name: str, label: str, sql: str) -> dashboard.QueryVariable:
    return (dashboard.QueryVariable(name).label(label).datasource(DATASOURCE)
            .query(sql).refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(models.VariableSort.ALPHABETICAL_ASC).multi(True).include_all(True)
            .current(models.VariableOption(selected=True, text="All", value="$__all")))


def _base(uid: str, title: str, description: str, db: str,
          extra: tuple[tuple[str, str, str], ...] = ()) -> dashboard.Dashboard:
    board = (dashboard.Dashboard(title).uid(uid).description(description).tags(TAGS)
             .time("now-6h", "now").refresh("1m").timezone("browser").editable())
    for name, label, column in (("service", "Service", "service"),
                                ("environment", "Environment", "environment"),
                                ("model", "Model", "request_model"), *extra):
        board = board.with_variable(_variable(
            name, label, f"SELECT DISTINCT {column} FROM {db}.samples WHERE $__timeFilter(ts)"))
    return board


def _stat(title: str, sql: str, unit: str, description: str) -> stat.Panel:
    return (stat.Panel().title(title).description(description).datasource(DATASOURCE)
            .with_target(Query(sql)).unit(unit).span(4).height(4)
            .graph_mode(BigValueGraphMode.NONE))


def _series(title: str, sql: str, unit: str, description: str, span: int = 12
            ) -> timeseries.Panel:
    return (timeseries.Panel().title(title).description(description).datasource(DATASOURCE)
            .with_target(Query(sql).time_series()).unit(unit).span(span).height(8)
            .legend(common.VizLegendOptions().show_legend(True)
                    .display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM)
                    .calcs([])))


def _table(title: str, sql: str, description: str, span: int = 24, height: int = 10
           ) -> table.Panel:
    return (table.Panel().title(title).description(description).datasource(DATASOURCE)
            .with_target(Query(sql)).span(span).height(height))


def _dollars(panel: table.Panel) -> table.Panel:
    """Columns named cost… in US dollars."""
    return panel.override_by_regexp("^cost", USD)


def overview(db: str) -> dashboard.Dashboard:
    where = f"FROM {db}.samples WHERE $__timeFilter(ts) AND {SAMPLE_FILTER}"
    panels: list[Panel] = [
        _stat("LLM calls", f"SELECT count() AS calls {where}", "short",
              "Captured LLM calls in the time range."),
        _stat("Error rate", f"SELECT countIf(status = 'error') / greatest(count(), 1) {where}",
              "percentunit", "Share of calls whose span ended in an error."),
        _stat("Latency p95", f"SELECT quantile(0.95)(duration_ms) {where}", "ms",
              "95th percentile of call duration."),
        _stat("Input tokens", f"SELECT sum(input_tokens) {where}", "short",
              "Prompt tokens reported by the provider."),
        _stat("Output tokens", f"SELECT sum(output_tokens) {where}", "short",
              "Completion tokens reported by the provider."),
        _stat("Redactions", f"SELECT sum(redactions) {where}", "short",
              "Personal data and secrets removed by the sidecar before storage."),
        _series("Calls by service",
                f"SELECT $__timeInterval(ts) AS time, service, count() AS calls {where} "
                "GROUP BY time, service ORDER BY time", "short",
                "LLM calls per interval, one series per service."),
        _series("Latency by model (p50, p95)",
                f"SELECT $__timeInterval(ts) AS time, request_model, "
                f"quantile(0.5)(duration_ms) AS p50, quantile(0.95)(duration_ms) AS p95 {where} "
                "GROUP BY time, request_model ORDER BY time", "ms",
                "Median and 95th percentile call duration per requested model.", span=12),
        _series("Errors by type",
                f"SELECT $__timeInterval(ts) AS time, error_type, count() AS errors {where} "
                "AND status = 'error' GROUP BY time, error_type ORDER BY time", "short",
                "Failed calls per interval by error class (rate limits, upstream 5xx, …).",
                span=12),
        _series("Tokens by model",
                f"SELECT $__timeInterval(ts) AS time, request_model, "
                f"sum(input_tokens) AS input, sum(output_tokens) AS output {where} "
                "GROUP BY time, request_model ORDER BY time", "short",
                "Input and output tokens per interval and model.", span=12),
        _series("Streaming: time to first token by model (p50, p95)",
                f"SELECT $__timeInterval(ts) AS time, request_model, "
                f"quantile(0.5)(ttft_ms) AS p50, quantile(0.95)(ttft_ms) AS p95 {where} "
                "AND ttft_ms IS NOT NULL GROUP BY time, request_model ORDER BY time", "ms",
                "How long streaming calls waited for their first token (calls whose "
                "instrumentation times streams: the SDK, OpenLIT).", span=12),
        _series("Streaming: output tokens per second by model (median)",
                f"SELECT $__timeInterval(ts) AS time, request_model, "
                f"quantile(0.5)(output_tokens_per_s) AS tokens_per_s {where} "
                "AND output_tokens_per_s IS NOT NULL GROUP BY time, request_model "
                "ORDER BY time", "short",
                "How fast streaming calls delivered their answer after the first token.",
                span=12),
        _table("Latency percentiles by service and operation",
               "SELECT service, operation, count() AS calls, "
               "round(quantile(0.5)(duration_ms)) AS p50_ms, "
               "round(quantile(0.9)(duration_ms)) AS p90_ms, "
               "round(quantile(0.95)(duration_ms)) AS p95_ms, "
               f"round(quantile(0.99)(duration_ms)) AS p99_ms {where} "
               "GROUP BY service, operation ORDER BY calls DESC LIMIT 100",
               "Call duration per service and GenAI operation (chat, embeddings, …).",
               span=12, height=8),
        _table("Calls by provider, operation and finish reason",
               "SELECT provider, operation, "
               "if(empty(finish_reasons), '(none)', arrayStringConcat(finish_reasons, ',')) "
               f"AS finish_reason, count() AS calls {where} "
               "GROUP BY provider, operation, finish_reason ORDER BY calls DESC LIMIT 100",
               "How calls ended: `length` means the answer was cut by the token limit, "
               "`content_filter` that the provider withheld it.", span=12, height=8),
        _table("Models",
               "SELECT request_model AS model, provider, count() AS calls, "
               "round(countIf(status = 'error') / count(), 4) AS error_rate, "
               "round(quantile(0.5)(duration_ms)) AS p50_ms, "
               "round(quantile(0.95)(duration_ms)) AS p95_ms, "
               "round(avg(input_tokens)) AS avg_input_tokens, "
               f"round(avg(output_tokens)) AS avg_output_tokens {where} "
               "GROUP BY model, provider ORDER BY calls DESC LIMIT 100",
               "Per requested model: volume, errors, latency and token use."),
    ]
    board = _base("watchkeeper-overview", "Watchkeeper · Overview",
                  "LLM traffic captured by Watchkeeper: volume, latency, errors, tokens.", db)
    return _with(board, panels)


def cost(db: str) -> dashboard.Dashboard:
    where = f"FROM {db}.samples WHERE $__timeFilter(ts) AND {SAMPLE_FILTER}"
    priced = f"{where} AND cost_usd IS NOT NULL"

    def by(title: str, key: str, description: str, expr: str = "", extra: str = ""
           ) -> table.Panel:
        column = f"{expr} AS {key}" if expr else key
        return _dollars(_table(
            title, f"SELECT {column}, count() AS calls, "
            f"countIf(cost_usd IS NOT NULL) AS priced_calls, {extra}sum(cost_usd) AS cost, "
            f"avg(cost_usd) AS cost_per_call {where} GROUP BY {key} "
            "ORDER BY cost DESC, calls DESC LIMIT 100",
            description + " Cost and cost per call are over the priced calls.",
            span=12, height=8))

    panels: list[Panel] = [
        _stat("Cost", f"SELECT sum(cost_usd) {where}", "currencyUSD",
              "What the priced calls in the time range cost, in US dollars. Unpriced calls "
              "add nothing here: they are counted under Unpriced calls."),
        _stat("Cost per hour",
              "SELECT sum(cost_usd) * 3600 / "
              f"greatest(dateDiff('second', $__fromTime, $__toTime), 1) {where}",
              "currencyUSD", "The priced calls' cost per hour, averaged over the time range "
              "(the alert rule compares the last hour with alerts.cost_per_hour_usd)."),
        _stat("Cost per call", f"SELECT avg(cost_usd) {where}", "currencyUSD",
              "Mean cost of a priced call."),
        _stat("Priced calls",
              f"SELECT countIf(cost_usd IS NOT NULL) / greatest(countIf({TOKENS}), 1) {where}",
              "percentunit", "Share of the calls with token counts whose model has a price."),
        _stat("Unpriced calls", f"SELECT countIf({UNPRICED}) {where}", "short",
              "Calls with token counts whose model has no price: their cost is unknown (not "
              "0). See Models without a price."),
        _stat("Calls without token counts", f"SELECT countIf(NOT {TOKENS}) {where}", "short",
              "Calls whose instrumentation reported no token counts (failed calls, often): "
              "they cannot be priced."),
        _series("Cost per day by service",
                f"SELECT toStartOfDay(ts) AS time, service, sum(cost_usd) AS cost {priced} "
                "GROUP BY time, service ORDER BY time", "currencyUSD",
                "What the priced calls cost per UTC day, stacked by service.")
        .draw_style(GraphDrawStyle.BARS).fill_opacity(80)
        .stacking(common.StackingConfig().mode(StackingMode.NORMAL)),
        _series("Cost over time by model",
                f"SELECT $__timeInterval(ts) AS time, price_model, sum(cost_usd) AS cost "
                f"{priced} GROUP BY time, price_model ORDER BY time", "currencyUSD",
                "What the priced calls cost per interval, stacked by the price table's model "
                "they matched.")
        .stacking(common.StackingConfig().mode(StackingMode.NORMAL)),
        by("Cost by service", "service", "Calls and their cost per service."),
        by("Cost by model", "model",
           "Calls and their cost per model of the price table (the response model, else the "
           "request model, without provider prefix and version suffix).",
           expr="if(price_model = '', '(no price)', price_model)",
           extra="sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "),
        by("Cost by environment", "environment", "Calls and their cost per environment."),
        by("Top users by cost", "user",
           "The users whose calls cost most (ids hashed when ingest.hash_user_ids is on).",
           expr="if(user_id = '', '(none)', user_id)"),
        _table("Models without a price",
               "SELECT if(response_model != '', response_model, request_model) AS model, "
               # aliases other than the columns': the filter reads the columns
               "provider, count() AS calls, sum(input_tokens) AS tokens_in, "
               f"sum(output_tokens) AS tokens_out, max(ts) AS last_seen {where} "
               f"AND {UNPRICED} GROUP BY model, provider ORDER BY calls DESC, model LIMIT 100",
               "Models as sent (the response model, else the request model) that the price "
               "table lacks, and their calls: add them under cost.prices in the config, then "
               "run `watchkeeper reprice --since 7d`.", height=8),
    ]
    board = _base("watchkeeper-cost", "Watchkeeper · Cost",
                  "What the LLM calls cost, per service, model, environment and user, and the "
                  "calls without a price.", db).time("now-7d", "now")
    return _with(board, panels)


def quality(db: str) -> dashboard.Dashboard:
    scores = f"FROM {db}.scores WHERE $__timeFilter(ts) AND {SERVICE_FILTER} AND error = ''"
    flags = (f"FROM {db}.flags FINAL WHERE $__timeFilter(ts) AND {SERVICE_FILTER} "
             "AND source NOT LIKE 'detector:%'")
    # A flag's status is its latest verdict in `reviews` (as `watchkeeper review` reads it),
    # or open without one.
    verdicts = (f"(SELECT flag_id, argMax(verdict, ts) AS verdict FROM {db}.reviews "
                "GROUP BY flag_id)")
    panels: list[Panel] = [
        _stat("Flagged samples", f"SELECT uniqExact(sample_id) {flags}", "short",
              "Samples with at least one watcher score past its threshold."),
        _stat("Open in review queue",
              f"SELECT count() {flags} AND flag_id NOT IN (SELECT flag_id FROM {db}.reviews)",
              "short", "Flags nobody has reviewed yet."),
        _stat("Scored samples", f"SELECT uniqExact(sample_id) {scores}", "short",
              "Samples the watchers have scored."),
        _series("Flag rate by watcher and label",
                f"SELECT $__timeInterval(ts) AS time, concat(watcher, ' · ', label) AS signal, "
                f"countIf(flagged) / count() AS rate {scores} "
                "GROUP BY time, signal ORDER BY time", "percentunit",
                "Share of scored samples flagged, per watcher label.", span=12),
        _series("Mean score by watcher and label",
                f"SELECT $__timeInterval(ts) AS time, concat(watcher, ' · ', label) AS signal, "
                f"avg(score) AS score {scores} GROUP BY time, signal ORDER BY time", "short",
                "Average watcher score per interval: a slow rise is drift in what the model "
                "says.", span=12),
        _series("Watcher latency p95",
                f"SELECT $__timeInterval(ts) AS time, watcher, "
                f"quantile(0.95)(latency_ms) AS p95 {scores} GROUP BY time, watcher ORDER BY time",
                "ms", "Time a watcher spends per sample (its batch time divided by batch size).",
                span=12),
        _series("Skipped by budget or backlog",
                f"SELECT $__timeInterval(ts) AS time, watcher, count() AS skipped "
                f"FROM {db}.scores WHERE $__timeFilter(ts) AND {SERVICE_FILTER} "
                "AND label = '_skipped' GROUP BY time, watcher ORDER BY time", "short",
                "Texts a watcher's budget (sampling.calls_per_minute, tokens_per_day) or its "
                "backlog bound (sampling.max_delay_s: a judge that fell behind) turned away: "
                "raise the budget, lower the rate or fix the endpoint if this is not 0.",
                span=12),
        _series("End-user feedback",
                f"SELECT $__timeInterval(ts) AS time, if(thumbs = '', 'score only', thumbs) "
                f"AS verdict, count() AS votes FROM {db}.user_feedback "
                f"WHERE $__timeFilter(ts) AND {SERVICE_FILTER} "
                "GROUP BY time, verdict ORDER BY time", "short",
                "Thumbs up / down and scores sent with the SDK's feedback().", span=12),
        _table("Score distribution by watcher and label",
               "SELECT concat(watcher, ' · ', label) AS signal, count() AS scored, "
               # the tenth a score falls in: 1.0 in the last, and a Float32 0.9 (0.8999…)
               # in 0.9-1 as written, not in 0.8-0.9
               + ", ".join(f"countIf(least(floor(score * 10 + 1e-4), 9) = {lo}) AS "
                           f"`{lo / 10:g}-{(lo + 1) / 10:g}`" for lo in range(10))
               + f" {scores} GROUP BY signal ORDER BY signal",
               "How many scores fall in each tenth of [0, 1]: a mean hides a watcher that "
               "splits traffic in two, or drifts toward its threshold.", height=8),
        _series("Prompt attacks and leaks by service",
                f"SELECT $__timeInterval(ts) AS time, concat(service, ' · ', label) AS signal, "
                f"count() AS flags {flags} AND label IN {SAFETY_LABELS} "
                "GROUP BY time, signal ORDER BY time", "short",
                "Prompts flagged as injection or jailbreak attempts (prompt-injection) and "
                "answers that reveal the system instructions (prompt-leak), per service.",
                span=12),
        _table("Prompt attacks and leaks by user",
               "SELECT if(s.user_id = '', '(unknown)', s.user_id) AS user, "
               "any(f.service) AS service, countIf(f.label = 'injection') AS attacks, "
               "countIf(f.label = 'leak') AS leaks, max(f.ts) AS last_seen, "
               "left(argMax(s.prompt_text, f.ts), 160) AS latest_prompt "
               f"FROM {db}.flags AS f FINAL LEFT JOIN {db}.samples AS s "
               "ON s.sample_id = f.sample_id WHERE $__timeFilter(f.ts) "
               f"AND f.service IN (${{service:singlequote}}) AND f.label IN {SAFETY_LABELS} "
               "GROUP BY user ORDER BY attacks + leaks DESC, last_seen DESC LIMIT 100",
               "Who sends the attacks (user ids as the SDK or instrumentation recorded them, "
               "hashed when ingest.hash_user_ids is on), and the latest one.", span=12,
               height=8),
        _table("Review queue",
               "SELECT f.ts AS time, f.service AS service, f.source AS watcher, "
               "f.label AS label, round(f.score, 3) AS score, "
               "coalesce(nullIf(r.verdict, ''), 'open') AS status, "
               "f.reason AS reason, left(s.prompt_text, 200) AS prompt, "
               "left(s.completion_text, 200) AS completion, toString(f.flag_id) AS flag_id "
               f"FROM {db}.flags AS f FINAL LEFT JOIN {db}.samples AS s "
               f"ON s.sample_id = f.sample_id LEFT JOIN {verdicts} AS r "
               "ON r.flag_id = f.flag_id "
               "WHERE $__timeFilter(f.ts) AND f.service IN (${service:singlequote}) "
               "AND f.source NOT LIKE 'detector:%' ORDER BY f.ts DESC LIMIT 200",
               "The latest flags with the text that raised them and their status: the latest "
               "verdict (confirmed, rejected), or open. Review with `watchkeeper review`.",
               height=12),
    ]
    board = _base("watchkeeper-quality", "Watchkeeper · Quality & safety",
                  "Watcher scores, flags, the review queue and end-user feedback.", db)
    return _with(board, panels)


def drift(db: str) -> dashboard.Dashboard:
    runs = f"FROM {db}.detector_runs WHERE $__timeFilter(window_end)"
    panels: list[Panel] = [
        _stat("Detector runs", f"SELECT count() {runs}", "short",
              "Runs of the scheduled drift and bias jobs in the time range."),
        _stat("Alerting runs", f"SELECT countIf(alert) {runs}", "short",
              "Runs whose test rejected 'nothing changed' after correction."),
        _stat("Jobs", f"SELECT uniqExact(job) {runs}", "short", "Distinct scheduled jobs."),
        _series("p-value by job and scope",
                "SELECT window_end AS time, concat(job, ' · ', scope) AS series, "
                f"p_value {runs} AND p_value IS NOT NULL ORDER BY time", "short",
                "Each run's p-value; below the job's threshold (alpha after correction) is an "
                "alert.", span=12),
        _series("Effect size by job and scope",
                "SELECT window_end AS time, concat(job, ' · ', scope) AS series, "
                f"effect_size {runs} AND effect_size IS NOT NULL ORDER BY time", "short",
                "How large the change is (MMD², AUC - 0.5, PSI, score gap …), whatever its "
                "significance.", span=12),
        _table("Alerts",
               "SELECT window_end AS time, job, detector, scope, round(statistic, 5) AS "
               "statistic, p_value, threshold, round(effect_size, 5) AS effect_size, "
               f"n_reference, n_current, left(details, 300) AS details {runs} AND alert "
               "ORDER BY time DESC LIMIT 200",
               "Runs that raised an alert; each also sits in the review queue as a flag."),
        _table("Latest run per job and scope",
               "SELECT job, detector, scope, max(window_end) AS last_window, "
               "argMax(p_value, window_end) AS p_value, argMax(alert, window_end) AS alert, "
               f"argMax(n_current, window_end) AS n_current {runs} "
               "GROUP BY job, detector, scope ORDER BY job, scope",
               "Where every job stands now.", height=8),
    ]
    board = _base("watchkeeper-drift", "Watchkeeper · Drift & bias",
                  "Scheduled drift and bias detector runs and their alerts.", db)
    return _with(board, panels)


def users(db: str) -> dashboard.Dashboard:
    where = (f"FROM {db}.samples WHERE $__timeFilter(ts) AND {SAMPLE_FILTER} "
             "AND user_id IN (${user:singlequote})")
    flagged = (f"(SELECT DISTINCT sample_id FROM {db}.flags WHERE $__timeFilter(ts) "
               "AND sample_id IS NOT NULL)")
    panels: list[Panel] = [
        _stat("Users", f"SELECT uniqExact(user_id) {where} AND user_id != ''", "short",
              "Distinct user ids (hashed when ingest.hash_user_ids is on)."),
        _stat("Conversations", f"SELECT uniqExact(conversation_id) {where} "
              "AND conversation_id != ''", "short", "Distinct conversation ids."),
        _stat("Calls without a user", f"SELECT countIf(user_id = '') / greatest(count(), 1) "
              f"{where}", "percentunit",
              "Share of calls whose instrumentation sent no user id (SDK: conversation())."),
        _series("Active users",
                f"SELECT $__timeInterval(ts) AS time, service, uniqExact(user_id) AS users "
                f"{where} AND user_id != '' GROUP BY time, service ORDER BY time", "short",
                "Distinct users per interval and service.", span=24),
        _dollars(_table(
            "Top users",
            "SELECT if(user_id = '', '(none)', user_id) AS user, count() AS calls, "
            "uniqExact(conversation_id) AS conversations, "
            "countIf(status = 'error') AS errors, sum(input_tokens) AS input_tokens, "
            "sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost, "
            f"countIf(sample_id IN {flagged}) AS flagged_calls, max(ts) AS last_seen "
            f"{where} GROUP BY user ORDER BY calls DESC LIMIT 100",
            "Users by calls, with their tokens, what their priced calls cost and how many of "
            "their calls a watcher flagged.", span=12, height=10)),
        _table("Latest conversations",
               "SELECT conversation_id AS conversation, any(user_id) AS user, "
               "any(service) AS app, count() AS turns, min(ts) AS started, "
               "max(ts) AS last_turn, "
               f"countIf(sample_id IN {flagged}) AS flagged_turns, "
               f"round(quantile(0.95)(duration_ms)) AS p95_ms {where} "
               "AND conversation_id != '' GROUP BY conversation "
               "ORDER BY last_turn DESC LIMIT 100",
               "The latest conversations, their length and flagged turns.", span=12,
               height=10),
    ]
    board = _base("watchkeeper-users", "Watchkeeper · Users & conversations",
                  "Who uses the LLM apps, how much, and whose calls were flagged.", db,
                  extra=(("user", "User", "user_id"),))
    return _with(board, panels)


def _with(board: dashboard.Dashboard, panels: list[Panel]) -> dashboard.Dashboard:
    for panel in panels:
        board = board.with_panel(panel)
    return board


DASHBOARDS: dict[str, Callable[[str], dashboard.Dashboard]] = {
    "overview": overview, "cost": cost, "quality": quality, "drift": drift, "users": users}


def _flow(board: dict[str, Any]) -> dict[str, Any]:
    """Panels left to right on the 24-column grid, a new row when one would not fit (the SDK
    places a full-width panel beside a half-width one, past the grid's edge)."""
    x = y = row_height = 0
    for panel in board.get("panels", []):
        grid = panel["gridPos"]
        if x + grid["w"] > 24:
            x, y, row_height = 0, y + row_height, 0
        grid["x"], grid["y"] = x, y
        x, row_height = x + grid["w"], max(row_height, grid["h"])
    return board


def build_all(database: str) -> dict[str, dict[str, Any]]:
    """name → dashboard JSON (the model Grafana imports) as plain data, for a database name."""
    return {name: _flow(json.loads(json.dumps(make(database).build(), cls=JSONEncoder)))
            for name, make in DASHBOARDS.items()}
