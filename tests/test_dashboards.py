"""Dashboards as code: every panel's SQL runs against a real store holding known rows, the
expansion matches the ClickHouse plugin's, the provisioning files hold no secret, and the
publisher speaks Grafana's HTTP API through grafana-client."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from helpers import CLI, JsonHandler
from watchkeeper.agent.config import QueryLimits, StoreConfig
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


def _sample(i: int, service: str, *, error: bool = False) -> Sample:
    return Sample(sample_id=sample_id_for("t", str(i)), trace_id="t", span_id=str(i),
                  ts=NOW - timedelta(minutes=5 * i), duration_ms=100.0 + i, service=service,
                  environment="prod", provider="openai", request_model="gpt-x",
                  status="error" if error else "ok",
                  error_type="RateLimitError" if error else "",
                  input_messages=[Message(role="user", parts=[Part(content=f"question {i}")])],
                  prompt_text=f"question {i}", completion_text=f"answer {i}",
                  input_tokens=10, output_tokens=20, redactions=i % 2, user_id=f"u{i % 5}",
                  conversation_id=f"c{i % 7}", operation="chat", finish_reasons=["stop"])


def _flag_id(n: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"flag-{n}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    handle = Store(f"chdb://{tmp_path / 'clickhouse'}", StoreConfig())
    migrate(handle)
    samples = [_sample(i, "chat" if i % 3 else "search", error=i % 10 == 0) for i in range(30)]
    handle.insert_json("samples", rows.json_rows(samples))
    handle.insert_rows(SCORES, [
        ScoreRow(sample_id=s.sample_id, ts=s.ts, service=s.service, watcher="tox", version="1",
                 field="completion", label="toxic", score=0.9 if n < 4 else 0.1, flagged=n < 4,
                 threshold=0.5, latency_ms=3.0, error="")
        for n, s in enumerate(samples)])
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
    boards = build_all("watchkeeper")

    def value(board: str, title: str) -> Any:
        panel = next(p for p in boards[board]["panels"] if p["title"] == title)
        values = {"service": ["chat", "search"], "environment": ["prod"], "model": ["gpt-x"],
                  "user": [f"u{i}" for i in range(5)]}
        _, result = run(expand(panel["targets"][0]["rawSql"], RANGE, values))
        return result

    assert value("overview", "LLM calls") == [[30]]
    assert value("overview", "Error rate")[0][0] == pytest.approx(3 / 30)
    assert value("overview", "Redactions") == [[15]]
    assert value("quality", "Flagged samples") == [[4]]
    queue = value("quality", "Review queue")
    assert {row[7] for row in queue} == {f"question {i}" for i in range(4)}  # prompt joined
    assert {row[5] for row in queue} == {"open"}
    assert value("quality", "Open in review queue") == [[4]]
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
    assert {u: (r[1], r[6]) for u, r in top.items()} == {
        "u0": (6, 1), "u1": (6, 1), "u2": (6, 1), "u3": (6, 1), "u4": (6, 0)}
    assert len(value("users", "Latest conversations")) == 7
    only_search = expand("SELECT count() FROM watchkeeper.samples WHERE "
                         "service IN (${service:singlequote})", RANGE, {"service": ["search"]})
    assert run(only_search)[1] == [[10]]


def test_review_panels_read_the_latest_verdict(store: Store, run_sql: Any) -> None:
    """Verdicts live in `reviews`, one row each; the latest per flag is its status."""
    def verdict(n: int, verdict: str, minutes: int) -> ReviewRow:
        return ReviewRow(flag_id=_flag_id(n), sample_id=None, verdict=verdict, label="toxic",
                         reviewer="alice", note="", ts=NOW - timedelta(minutes=minutes))

    store.insert_rows(REVIEWS, [verdict(0, "confirmed", 3),
                                verdict(1, "rejected", 3), verdict(1, "confirmed", 2),
                                verdict(2, "confirmed", 3), verdict(2, "rejected", 2)])
    boards = build_all("watchkeeper")
    run = run_sql
    values = {"service": ["chat", "search"], "environment": ["prod"], "model": ["gpt-x"]}

    def panel(title: str) -> list[dict[str, Any]]:
        found = next(p for p in boards["quality"]["panels"] if p["title"] == title)
        columns, rows = run(expand(found["targets"][0]["rawSql"], RANGE, values))
        return [dict(zip(columns, row, strict=True)) for row in rows]

    status = {row["flag_id"]: row["status"] for row in panel("Review queue")}
    assert status == {str(_flag_id(0)): "confirmed", str(_flag_id(1)): "confirmed",
                      str(_flag_id(2)): "rejected", str(_flag_id(3)): "open"}
    [open_count] = panel("Open in review queue")
    assert list(open_count.values()) == [1]


def test_export_writes_provisioning_without_secrets(tmp_path: Path) -> None:
    written = export(tmp_path, database="wk", clickhouse_url="https://ch.internal:8443",
                     username="grafana")
    names = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    assert names == ["dashboards/watchkeeper-drift.json", "dashboards/watchkeeper-overview.json",
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
    assert len(boards) == 8
    assert {b["dashboard"]["uid"] for b in boards} == {
        "watchkeeper-overview", "watchkeeper-quality", "watchkeeper-drift", "watchkeeper-users"}
    assert all(b["overwrite"] and b["folderUid"] == "watchkeeper" for b in boards)
    assert {c[2] for c in _Grafana.calls} == {"Bearer glsa_secret"}


def test_report_renders_every_dashboard(run_sql: Any) -> None:
    from watchkeeper.dashboards.report import render

    seen: list[str] = []
    page = render("watchkeeper", run_sql, RANGE, progress=seen.append)
    assert len(seen) == sum(len(b["panels"]) for b in build_all("watchkeeper").values())
    assert page.count("<h2>") == 4
    series = [p for b in build_all("watchkeeper").values() for p in b["panels"]
              if p["type"] == "timeseries"]
    assert page.count("data:image/png;base64,") == len(series) >= 9  # every one drawn
    assert "<b>30</b>" in page  # LLM calls
    assert "question 0" in page  # the review queue's prompt excerpt


def test_alert_rules_run_against_the_engine_and_fire_where_they_should(run_sql: Any) -> None:
    """Every rule's query, expanded over its own window as Grafana's plugin would, runs in the
    sandbox; the rows past the threshold are the series that would fire."""
    from watchkeeper.agent.config import AlertRulesConfig
    from watchkeeper.dashboards.alerts import provisioning

    config = AlertRulesConfig(error_rate=0.05, latency_p95_ms=125, flag_rate=0.05,
                              window_minutes=180)
    document = provisioning("watchkeeper", config, "Watchkeeper")
    [group] = document["groups"]
    assert document["apiVersion"] == 1 and group["folder"] == "Watchkeeper"
    run = run_sql
    firing: dict[str, set[tuple[Any, ...]]] = {}
    for rule in group["rules"]:
        query, reduce, threshold = rule["data"]
        assert rule["condition"] == threshold["refId"] == "C"
        assert reduce["model"]["expression"] == "A" and threshold["model"]["expression"] == "B"
        assert query["datasourceUid"] == "watchkeeper-clickhouse"
        window = query["relativeTimeRange"]["from"]
        assert window == 180 * 60
        limit = threshold["model"]["conditions"][0]["evaluator"]["params"][0]
        columns, rows = run(expand(query["model"]["rawSql"], TimeRange(
            NOW - timedelta(seconds=window), NOW + timedelta(minutes=1), interval_s=60), {}))
        assert columns[-1] == "value"
        firing[rule["uid"]] = {tuple(row[:-1]) for row in rows if row[-1] > limit}
    # calls 0, 10, 20 failed: chat 2 of 20 (10%); search 1 of 10 (too few calls to judge)
    assert firing["wk-error-rate"] == {("chat",)}
    # durations 100-129 ms: p95 of chat's past 125 ms, search's (100..127 step 3) too
    assert ("chat",) in firing["wk-latency-p95"]
    # tox flagged samples 0-3: chat 2 of 20 (10% > 5%); search 2 of 10 (too few to judge)
    assert firing["wk-flag-rate"] == {("chat", "tox", "toxic")}
    assert firing["wk-drift-alert"] == {("prompt-drift", "service=chat")}


def test_export_writes_the_alert_rules_with_the_configured_thresholds(tmp_path: Path) -> None:
    from watchkeeper.agent.config import AlertRulesConfig

    written = export(tmp_path, database="wk", clickhouse_url="http://ch:8123", username="g",
                     alerts=AlertRulesConfig(error_rate=0.02, pending="10m"))
    rules_file = tmp_path / "provisioning/alerting/watchkeeper.yaml"
    assert rules_file in written
    [group] = yaml.safe_load(rules_file.read_text())["groups"]
    by_uid = {r["uid"]: r for r in group["rules"]}
    assert set(by_uid) == {"wk-error-rate", "wk-latency-p95", "wk-flag-rate", "wk-drift-alert"}
    error_rate = by_uid["wk-error-rate"]
    assert error_rate["for"] == "10m"
    assert error_rate["data"][2]["model"]["conditions"][0]["evaluator"]["params"] == [0.02]
    assert "wk.samples" in error_rate["data"][0]["model"]["rawSql"]
