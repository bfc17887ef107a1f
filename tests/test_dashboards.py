"""Dashboards as code: every panel's SQL runs against a real store holding known rows, the
expansion matches the ClickHouse plugin's, the provisioning files hold no secret, and the
publisher speaks Grafana's HTTP API through grafana-client."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from helpers import CLI, JsonHandler
from watchkeeper.agent.config import CostConfig, QueryLimits, StoreConfig
from watchkeeper.agent.cost.prices import packaged_prices, sync_prices
from watchkeeper.agent.store import rows
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import migrate
from watchkeeper.agent.store.sandbox import Sandbox
from watchkeeper.agent.store.tables import (
    DETECTOR_RUNS,
    FLAGS,
    REVIEWS,
    SCORES,
    DetectorRunRow,
    FlagRow,
    ReviewRow,
    ScoreRow,
)
from watchkeeper.collectors.normalise import Message, Part, Sample
from watchkeeper.collectors.normalise.sample import Feedback, sample_id_for
from watchkeeper.dashboards.check import check
from watchkeeper.dashboards.definitions import build_all
from watchkeeper.dashboards.expand import TimeRange, expand
from watchkeeper.dashboards.provisioning import PASSWORD_ENV, export

NOW = datetime.now(UTC).replace(microsecond=0)
RANGE = TimeRange(NOW - timedelta(hours=3), NOW + timedelta(minutes=1), interval_s=600)
PRICED = "gpt-4o-mini"  # in the packaged price table; "gpt-x" is not
BOARDS = build_all("watchkeeper")
VALUES = {"service": ["chat", "search"], "environment": ["prod"], "model": ["gpt-x", PRICED],
          "user": [f"u{i}" for i in range(5)]}


def _sample(i: int, service: str, *, error: bool = False) -> Sample:
    """Even calls to a priced model (answered as a dated version), odd ones to an unpriced
    one; failed calls report no tokens."""
    priced = i % 2 == 0
    return Sample(sample_id=sample_id_for("t", str(i)), trace_id="t", span_id=str(i),
                  ts=NOW - timedelta(minutes=5 * i), duration_ms=100.0 + i, service=service,
                  environment="prod", provider="openai",
                  request_model=PRICED if priced else "gpt-x",
                  response_model=f"{PRICED}-2024-07-18" if priced else "",
                  status="error" if error else "ok",
                  error_type="RateLimitError" if error else "",
                  input_messages=[Message(role="user", parts=[Part(content=f"question {i}")])],
                  prompt_text=f"question {i}", completion_text=f"answer {i}",
                  input_tokens=None if error else 1000 * (i + 1),
                  output_tokens=None if error else 200 * (i + 1),
                  redactions=i % 2, user_id=f"u{i % 5}",
                  conversation_id=f"c{i % 7}", operation="chat", finish_reasons=["stop"],
                  # every third call streamed: first token after (20 + i) ms
                  attributes={"gen_ai.request.stream": "true",
                              "gen_ai.response.time_to_first_chunk": str((20 + i) / 1000)}
                  if i % 3 == 0 else {})


def _samples() -> list[Sample]:
    return [_sample(i, "chat" if i % 3 else "search", error=i % 10 == 0) for i in range(30)]


def _cost(sample: Sample) -> float | None:
    """What the call costs by the packaged price of its model; None when it has none."""
    price = {p.model: p for p in packaged_prices()}.get(sample.request_model)
    if price is None or sample.input_tokens is None or sample.output_tokens is None:
        return None
    return (sample.input_tokens * price.input + sample.output_tokens * price.output) / 1e6


def _query(run: Any, board: str, title: str) -> tuple[list[str], list[list[Any]]]:
    """A panel's SQL, expanded with every variable's values, run in the sandbox."""
    panel = next(p for p in BOARDS[board]["panels"] if p["title"] == title)
    columns, rows = run(expand(panel["targets"][0]["rawSql"], RANGE, VALUES))
    return columns, rows


def _records(run: Any, board: str, title: str) -> list[dict[str, Any]]:
    columns, rows = _query(run, board, title)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _flag_id(n: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"flag-{n}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    handle = Store(f"chdb://{tmp_path / 'clickhouse'}", StoreConfig())
    migrate(handle)
    sync_prices(handle, CostConfig())  # without it every cost is NULL
    samples = _samples()
    handle.insert_json("samples", rows.json_rows(samples))
    handle.insert_rows(SCORES, [
        ScoreRow(sample_id=s.sample_id, ts=s.ts, service=s.service, watcher="tox", version="1",
                 field="completion", label="toxic", score=0.9 if n < 4 else 0.1, flagged=n < 4,
                 threshold=0.5, latency_ms=3.0, error="")
        for n, s in enumerate(samples)] + [
        # two texts a judge's budget turned away (watch/budget.py)
        ScoreRow(sample_id=s.sample_id, ts=s.ts, service=s.service, watcher="judge",
                 version="1", field="completion", label="_skipped", score=0.0, flagged=False,
                 threshold=None, latency_ms=0.0,
                 error="skipped: budget of 60 calls per minute spent")
        for s in samples[:2]])
    handle.insert_rows(FLAGS, [
        FlagRow(flag_id=_flag_id(n), sample_id=s.sample_id, ts=s.ts, service=s.service,
                source="watcher:tox", reason="toxic 0.90 ≥ 0.50", label="toxic",
                field="completion", score=0.9)
        for n, s in enumerate(samples[:4])])
    handle.insert_json("user_feedback", rows.json_rows([
        Feedback(trace_id="t", span_id="1", ts=NOW, thumbs="down", comment="rude",
                 service="chat")]))
    handle.insert_rows(DETECTOR_RUNS, [DetectorRunRow(
        run_id=uuid.uuid4(), job="prompt-drift", detector="mmd", scope="service=chat",
        window_start=NOW - timedelta(hours=1), window_end=NOW,
        reference_start=NOW - timedelta(hours=2), reference_end=NOW - timedelta(hours=1),
        statistic=0.02, p_value=0.001, threshold=0.05, effect_size=0.02, alert=True,
        n_reference=200, n_current=180, details="{}")])
    yield handle
    handle.close()


@pytest.fixture
def run_sql(store: Store) -> Iterator[Any]:
    """Panels' SQL as `dashboards check` runs it: user SQL, in the read-only sandbox (closed
    after the test: the embedded engine opens another store only once every session closed)."""
    sandbox = Sandbox(store, QueryLimits())

    def run(sql: str) -> tuple[list[str], list[list[Any]]]:
        result = sandbox.run(sql)
        return result.columns, [list(r) for r in result.rows]
    yield run
    sandbox.close()


def test_expansion_matches_the_plugin() -> None:
    start, end = RANGE.seconds()
    sql = expand("SELECT $__timeInterval(ts) AS t FROM x WHERE $__timeFilter(ts) "
                 "AND service IN (${service:singlequote}) AND n < $__interval_s",
                 RANGE, {"service": ["a", "o'b"]})
    assert sql == (f"SELECT toStartOfInterval(toDateTime(ts), INTERVAL 600 second) AS t FROM x "
                   f"WHERE ts >= toDateTime({start}) AND ts <= toDateTime({end}) "
                   "AND service IN ('a','o\\'b') AND n < 600")
    assert "IN ('')" in expand("IN (${service:singlequote})", RANGE, {"service": []})
    with pytest.raises(KeyError, match="unknown dashboard variable"):
        expand("${nope}", RANGE, {})


def test_every_panel_runs_against_the_schema(run_sql: Any) -> None:
    results = check("watchkeeper", run_sql, RANGE)
    failures = [r for r in results if r.error]
    assert not failures, failures
    by_panel = {(r.dashboard, r.panel): r.rows for r in results}
    assert len(by_panel) == len(results) >= 20
    assert by_panel[("quality", "Review queue")] == 4
    assert by_panel[("drift", "Alerts")] == 1


def test_panels_compute_what_they_say(run_sql: Any) -> None:
    run = run_sql

    def value(board: str, title: str) -> Any:
        return _query(run, board, title)[1]

    assert value("overview", "LLM calls") == [[30]]
    assert value("overview", "Error rate")[0][0] == pytest.approx(3 / 30)
    assert value("overview", "Redactions") == [[15]]
    assert value("quality", "Flagged samples") == [[4]]
    queue = value("quality", "Review queue")
    assert {row[7] for row in queue} == {f"question {i}" for i in range(4)}  # prompt joined
    assert {row[5] for row in queue} == {"open"}
    assert value("quality", "Open in review queue") == [[4]]
    assert sum(row[2] for row in value("quality", "Skipped by budget or backlog")) == 2
    assert value("quality", "Scored samples") == [[30]]  # a skipped text is not a score
    # percentiles per service and operation; how calls ended
    latency = {row[0]: row for row in value("overview",
                                             "Latency percentiles by service and operation")}
    assert latency["chat"][1:3] == ["chat", 20] and latency["search"][2] == 10
    assert latency["chat"][3] <= latency["chat"][4] <= latency["chat"][5] <= latency["chat"][6]
    assert value("overview", "Calls by provider, operation and finish reason") == [
        ["openai", "chat", "stop", 30]]
    # scores per tenth: 4 toxic at 0.9, 26 at 0.1
    [dist] = value("quality", "Score distribution by watcher and label")
    assert dist[:2] == ["tox · toxic", 30] and dist[3] == 26 and dist[11] == 4
    # users: 5, 6 calls each; the four flagged samples belong to u0..u3
    assert value("users", "Users") == [[5]] and value("users", "Conversations") == [[7]]
    top = {row[0]: row for row in value("users", "Top users")}
    assert {u: (r[1], r[7]) for u, r in top.items()} == {
        "u0": (6, 1), "u1": (6, 1), "u2": (6, 1), "u3": (6, 1), "u4": (6, 0)}
    assert len(value("users", "Latest conversations")) == 7
    # streaming: the search calls (every third) carry a time to first token
    ttft = value("overview", "Streaming: time to first token by model (p50, p95)")
    assert ttft and all(20 <= row[2] <= row[3] <= 50 for row in ttft)
    rates = value("overview", "Streaming: output tokens per second by model (median)")
    assert rates and all(row[2] > 0 for row in rates)
    only_search = expand("SELECT count() FROM watchkeeper.samples WHERE "
                         "service IN (${service:singlequote})", RANGE, {"service": ["search"]})
    assert run(only_search)[1] == [[10]]


def test_cost_panels_sum_the_priced_calls_and_count_the_rest(run_sql: Any) -> None:
    """The engine prices gpt-4o-mini by the packaged table (its dated response model matches
    too) and leaves gpt-x NULL: counted as unpriced and listed, never summed as 0."""
    samples = _samples()
    costs = [_cost(s) for s in samples]
    total = sum(c for c in costs if c is not None)
    assert sum(c is not None for c in costs) == 12  # 15 gpt-4o-mini calls, 3 failed: no tokens

    def stat(title: str) -> Any:
        [[value]] = _query(run_sql, "cost", title)[1]
        return value

    def expected(key: Callable[[Sample], str]) -> dict[str, tuple[int, int, Any]]:
        """key → (calls, priced calls, their cost or None), computed here."""
        groups: dict[str, list[float | None]] = {}
        for sample, cost in zip(samples, costs, strict=True):
            groups.setdefault(key(sample), []).append(cost)
        return {k: (len(v), len(priced := [c for c in v if c is not None]),
                    pytest.approx(sum(priced)) if priced else None) for k, v in groups.items()}

    def table(title: str, column: str) -> dict[str, tuple[int, int, Any]]:
        return {r[column]: (r["calls"], r["priced_calls"], r["cost"])
                for r in _records(run_sql, "cost", title)}

    assert stat("Cost") == pytest.approx(total)
    assert stat("Cost per call") == pytest.approx(total / 12)
    start, end = RANGE.seconds()
    assert stat("Cost per hour") == pytest.approx(total * 3600 / (end - start))
    assert stat("Priced calls") == pytest.approx(12 / 27)
    assert stat("Unpriced calls") == 15 and stat("Calls without token counts") == 3
    by_service = expected(lambda s: s.service)
    assert table("Cost by service", "service") == by_service
    assert table("Cost by environment", "environment") == expected(lambda s: s.environment)
    assert table("Top users by cost", "user") == expected(lambda s: s.user_id)
    assert table("Cost by model", "model") == expected(
        lambda s: PRICED if s.request_model == PRICED else "(no price)")
    daily: dict[str, float] = {}  # the samples may straddle a UTC midnight
    for _, service, cost in _query(run_sql, "cost", "Cost per day by service")[1]:
        daily[service] = daily.get(service, 0.0) + cost
    assert daily == {service: cost for service, (_, _, cost) in by_service.items()}
    [unpriced] = _records(run_sql, "cost", "Models without a price")
    assert (unpriced["model"], unpriced["provider"], unpriced["calls"]) == (
        "gpt-x", "openai", 15)
    users = {r["user"]: r["cost"] for r in _records(run_sql, "users", "Top users")}
    assert users == {u: cost for u, (_, _, cost) in expected(lambda s: s.user_id).items()}


def test_review_panels_read_the_latest_verdict(store: Store, run_sql: Any) -> None:
    """Verdicts live in `reviews`, one row each; the latest per flag is its status."""
    def verdict(n: int, verdict: str, minutes: int) -> ReviewRow:
        return ReviewRow(flag_id=_flag_id(n), sample_id=None, verdict=verdict, label="toxic",
                         reviewer="alice", note="", ts=NOW - timedelta(minutes=minutes))

    store.insert_rows(REVIEWS, [verdict(0, "confirmed", 3),
                                verdict(1, "rejected", 3), verdict(1, "confirmed", 2),
                                verdict(2, "confirmed", 3), verdict(2, "rejected", 2)])

    def panel(title: str) -> list[dict[str, Any]]:
        return _records(run_sql, "quality", title)

    status = {row["flag_id"]: row["status"] for row in panel("Review queue")}
    assert status == {str(_flag_id(0)): "confirmed", str(_flag_id(1)): "confirmed",
                      str(_flag_id(2)): "rejected", str(_flag_id(3)): "open"}
    [open_count] = panel("Open in review queue")
    assert list(open_count.values()) == [1]


def test_export_writes_provisioning_without_secrets(tmp_path: Path) -> None:
    written = export(tmp_path, database="wk", clickhouse_url="https://ch.internal:8443",
                     username="grafana")
    names = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    assert names == ["dashboards/watchkeeper-cost.json", "dashboards/watchkeeper-drift.json",
                     "dashboards/watchkeeper-overview.json",
                     "dashboards/watchkeeper-quality.json", "dashboards/watchkeeper-users.json",
                     "provisioning/alerting/watchkeeper.yaml",
                     "provisioning/dashboards/watchkeeper.yaml",
                     "provisioning/datasources/watchkeeper.yaml"]
    overview = json.loads((tmp_path / "dashboards/watchkeeper-overview.json").read_text())
    assert overview["uid"] == "watchkeeper-overview"
    assert all("wk.samples" in p["targets"][0]["rawSql"] for p in overview["panels"])
    source = yaml.safe_load((tmp_path / "provisioning/datasources/watchkeeper.yaml").read_text())
    entry = source["datasources"][0]
    assert entry["type"] == "grafana-clickhouse-datasource"
    assert entry["jsonData"]["host"] == "ch.internal" and entry["jsonData"]["secure"] is True
    assert entry["secureJsonData"]["password"] == f"$__env{{{PASSWORD_ENV}}}"


def test_helm_chart_ships_the_generated_dashboards() -> None:
    """The chart's ConfigMap reads helm/watchkeeper/dashboards/*.json: regenerate them with
    `watchkeeper dashboards export --dashboards-only --out helm/watchkeeper` after a change."""
    from watchkeeper.dashboards.provisioning import dashboard_json

    chart = Path(__file__).resolve().parent.parent / "helm" / "watchkeeper" / "dashboards"
    for name, board in build_all("watchkeeper").items():
        shipped = chart / f"watchkeeper-{name}.json"
        assert shipped.is_file(), f"{shipped} missing"
        assert shipped.read_text() == dashboard_json(board), f"{shipped} is stale"


class _Grafana(JsonHandler):
    """Records what the client sends; answers the way Grafana's API documents."""

    calls: ClassVar[list[tuple[str, str, str, Any]]] = []
    folders: ClassVar[set[str]] = set()

    def do_GET(self) -> None:
        self.calls.append(("GET", self.path, self.headers["Authorization"], None))
        uid = self.path.rsplit("/", 1)[-1]
        if uid in self.folders:
            self.send_json(200, {"uid": uid, "title": "Watchkeeper"})
        else:
            self.send_json(404, {"message": "folder not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append(("POST", self.path, self.headers["Authorization"], body))
        if self.path == "/api/folders":
            self.folders.add(body["uid"])
            self.send_json(200, {"uid": body["uid"], "title": body["title"]})
        else:
            uid = body["dashboard"]["uid"]
            self.send_json(200, {"uid": uid, "status": "success", "version": 1,
                              "url": f"/d/{uid}"})


def test_push_through_grafana_http_api(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Grafana)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = tmp_path / "token"
    token.write_text("glsa_secret\n")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        for _ in range(2):  # the second push finds the folder and overwrites
            done = subprocess.run([*CLI, "dashboards", "push", "--grafana-url", url,
                                   "--token-file", str(token)],
                                  capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr
            assert "glsa_secret" not in done.stdout + done.stderr
    finally:
        server.shutdown()
    posts = [c for c in _Grafana.calls if c[0] == "POST"]
    assert [c[1] for c in posts].count("/api/folders") == 1
    boards = [c[3] for c in posts if c[1] == "/api/dashboards/db"]
    assert len(boards) == 10
    assert {b["dashboard"]["uid"] for b in boards} == {
        "watchkeeper-overview", "watchkeeper-cost", "watchkeeper-quality", "watchkeeper-drift",
        "watchkeeper-users"}
    assert all(b["overwrite"] and b["folderUid"] == "watchkeeper" for b in boards)
    assert {c[2] for c in _Grafana.calls} == {"Bearer glsa_secret"}


def _embedded(page: str) -> dict[str, Any]:
    """The data a static report carries, read back the way its script reads it."""
    text = page.split("<script type='application/json' id='snapshot'>")[1].split("</script>")[0]
    return json.loads(text)  # type: ignore[no-any-return]


def test_report_renders_every_dashboard(run_sql: Any) -> None:
    """The report embeds every panel's data (drawn by the live view's renderer and uPlot, also
    embedded); its range is fitted to the samples it found, not the whole lookback."""
    from watchkeeper.dashboards.report import render

    seen: list[str] = []
    page = render("watchkeeper", run_sql, timedelta(days=2), progress=seen.append)
    assert len(seen) == sum(len(b["panels"]) for b in BOARDS.values())
    assert "uPlot" in page and "renderBoard" in page and "data:image/png" not in page
    snapshot = _embedded(page)
    boards = {b["name"]: b for b in snapshot["boards"]}
    assert list(boards) == list(BOARDS)
    overview = boards["overview"]
    start, end = (datetime.fromisoformat(overview[k]) for k in ("start", "end"))
    assert NOW - timedelta(minutes=160) < start < NOW - timedelta(minutes=145)  # fitted
    assert end - start < timedelta(hours=3) and overview["interval_s"] == 120  # ~120 points
    panels = {p["title"]: p for b in boards.values() for p in b["panels"]}
    assert not [t for t, p in panels.items() if p["error"]]
    assert panels["LLM calls"]["value"] == 30
    drawn = [p for p in panels.values() if p["kind"] == "timeseries" and p["frame"]["times"]]
    assert len(drawn) >= 9
    for panel in drawn:  # one time axis, every series aligned to it
        assert all(len(s["values"]) == len(panel["frame"]["times"])
                   for s in panel["frame"]["series"])
    queue = panels["Review queue"]
    assert any("question 0" in str(cell) for row in queue["rows"] for cell in row)
    assert all(len(row[0]) == 19 for row in queue["rows"])  # times to the second
    unpriced = panels["Models without a price"]
    assert unpriced["rows"][0][:3] == ["gpt-x", "openai", 15]
    assert panels["Cost by service"]["units"][panels["Cost by service"]["columns"]
                                              .index("cost")] == "currencyUSD"


def test_report_data_cannot_close_its_script_element() -> None:
    """Text from the store (a prompt, say) is data in the page, never markup."""
    from watchkeeper.dashboards import page
    from watchkeeper.dashboards.snapshot import BoardData, Grid, PanelData, Snapshot

    hostile = "</script><script>alert(1)</script><!--"
    board = BoardData(name="b", uid="b", title="t", start=NOW, end=NOW, interval_s=1,
                      variables=[], panels=[PanelData(title="p", kind="table", grid=Grid(),
                                                      columns=["prompt"], rows=[[hostile]])])
    html = page.report(Snapshot(database="watchkeeper", boards=[board]))
    assert hostile not in html and html.count("</script>") == 3  # the data and two scripts
    assert _embedded(html)["boards"][0]["panels"][0]["rows"] == [[hostile]]


def test_alert_rules_run_against_the_engine_and_fire_where_they_should(run_sql: Any) -> None:
    """Every rule's query, expanded over its own window as Grafana's plugin would, runs in the
    sandbox; the rows past the threshold are the series that would fire."""
    from watchkeeper.agent.config import AlertRulesConfig
    from watchkeeper.dashboards.alerts import provisioning

    config = AlertRulesConfig(error_rate=0.05, latency_p95_ms=125, flag_rate=0.05,
                              cost_per_hour_usd=0.005, window_minutes=180)
    document = provisioning("watchkeeper", config, "Watchkeeper")
    [group] = document["groups"]
    assert document["apiVersion"] == 1 and group["folder"] == "Watchkeeper"
    run = run_sql
    firing: dict[str, set[tuple[Any, ...]]] = {}
    values: dict[str, dict[tuple[Any, ...], Any]] = {}
    for rule in group["rules"]:
        query, reduce, threshold = rule["data"]
        assert rule["condition"] == threshold["refId"] == "C"
        assert reduce["model"]["expression"] == "A" and threshold["model"]["expression"] == "B"
        assert query["datasourceUid"] == "watchkeeper-clickhouse"
        window = query["relativeTimeRange"]["from"]
        assert window == (60 if rule["uid"] == "wk-cost-per-hour" else 180) * 60
        limit = threshold["model"]["conditions"][0]["evaluator"]["params"][0]
        columns, rows = run(expand(query["model"]["rawSql"], TimeRange(
            NOW - timedelta(seconds=window), NOW + timedelta(minutes=1), interval_s=60), {}))
        assert columns[-1] == "value"
        firing[rule["uid"]] = {tuple(row[:-1]) for row in rows if row[-1] > limit}
        values[rule["uid"]] = {tuple(row[:-1]): row[-1] for row in rows}
    # calls 0, 10, 20 failed: chat 2 of 20 (10%); search 1 of 10 (too few calls to judge)
    assert firing["wk-error-rate"] == {("chat",)}
    # durations 100-129 ms: p95 of chat's past 125 ms, search's (100..127 step 3) too
    assert ("chat",) in firing["wk-latency-p95"]
    # tox flagged samples 0-3: chat 2 of 20 (10% > 5%); search 2 of 10 (too few to judge)
    assert firing["wk-flag-rate"] == {("chat", "tox", "toxic")}
    assert firing["wk-drift-alert"] == {("prompt-drift", "service=chat")}
    # the priced calls of the last hour (calls 2 to 12, every other one; 10 failed) per service
    hour: dict[tuple[Any, ...], float] = {}
    for sample in _samples():
        if sample.ts >= NOW - timedelta(hours=1) and (cost := _cost(sample)) is not None:
            hour[(sample.service,)] = hour.get((sample.service,), 0.0) + cost
    assert values["wk-cost-per-hour"] == pytest.approx(hour)
    assert hour[("search",)] > 0.005 > hour[("chat",)]
    assert firing["wk-cost-per-hour"] == {("search",)}


def test_export_writes_the_alert_rules_with_the_configured_thresholds(tmp_path: Path) -> None:
    from watchkeeper.agent.config import AlertRulesConfig

    written = export(tmp_path, database="wk", clickhouse_url="http://ch:8123", username="g",
                     alerts=AlertRulesConfig(error_rate=0.02, pending="10m",
                                             cost_per_hour_usd=7.5))
    rules_file = tmp_path / "provisioning/alerting/watchkeeper.yaml"
    assert rules_file in written
    [group] = yaml.safe_load(rules_file.read_text())["groups"]
    by_uid = {r["uid"]: r for r in group["rules"]}
    assert set(by_uid) == {"wk-error-rate", "wk-latency-p95", "wk-cost-per-hour",
                           "wk-flag-rate", "wk-drift-alert"}
    error_rate = by_uid["wk-error-rate"]
    assert error_rate["for"] == "10m"
    assert error_rate["data"][2]["model"]["conditions"][0]["evaluator"]["params"] == [0.02]
    assert "wk.samples" in error_rate["data"][0]["model"]["rawSql"]
    assert error_rate["data"][0]["relativeTimeRange"]["from"] == 10 * 60  # window_minutes
    cost = by_uid["wk-cost-per-hour"]  # always over the last hour
    assert cost["data"][0]["relativeTimeRange"]["from"] == 3600
    assert cost["data"][2]["model"]["conditions"][0]["evaluator"]["params"] == [7.5]
    assert "$7.5 in the last 60 minutes" in cost["annotations"]["summary"]


def test_panels_tile_the_grid_without_overlap() -> None:
    """Every panel inside Grafana's 24 columns, none on another: what Grafana and the live view
    lay out is what the definitions say."""
    for name, board in BOARDS.items():
        taken: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, (name, panel["title"])
            cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                     for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not cells & taken, (name, panel["title"])
            taken |= cells


def test_a_failing_panel_says_why_and_the_others_still_draw(run_sql: Any) -> None:
    from watchkeeper.dashboards.snapshot import board_data

    def run(sql: str) -> tuple[list[str], list[list[Any]]]:
        if "quantile(0.95)(duration_ms) FROM" in sql:
            raise RuntimeError("Code: 241. DB::Exception: memory limit exceeded")
        return run_sql(sql)  # type: ignore[no-any-return]

    board = board_data("watchkeeper", "overview", run, RANGE)
    errors = {p.title: p.error for p in board.panels if p.error}
    assert list(errors) == ["Latency p95"] and "memory limit" in errors["Latency p95"]
    assert {p.title: p for p in board.panels}["LLM calls"].value == 30
