"""Nothing acknowledged is lost in the embedded default, with real processes: `up` killed with
SIGKILL in the middle of a steady stream, then started again on the same data directory; a
log that fills up while the store is away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from helpers import Service, genai_request, post, running_agent

SPANS_PER_EXPORT = 20
PORTS = ("--otlp-http-port", "0", "--otlp-grpc-port", "0", "--api-port", "0")


def _export(tag: str) -> tuple[bytes, list[str]]:
    """An export of GenAI spans, each in its own trace, with prompt and completion on it."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    now = time.time_ns()
    ids = []
    for i in range(SPANS_PER_EXPORT):
        span = spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name="chat m",
                         start_time_unix_nano=now, end_time_unix_nano=now + 1_000_000)
        ids.append(span.span_id.hex())
        span.attributes.add(key="gen_ai.operation.name").value.string_value = "chat"
        span.attributes.add(key="gen_ai.request.model").value.string_value = "m"
        for key, role, text in (("gen_ai.input.messages", "user", f"{tag} {i} " + "x" * 900),
                                ("gen_ai.output.messages", "assistant", f"answer {tag} {i}")):
            span.attributes.add(key=key).value.string_value = json.dumps(
                [{"role": role, "parts": [{"type": "text", "content": text}]}])
    return request.SerializeToString(), ids


class Sender:
    """Exports at a steady rate from a few threads, like instrumented app replicas, and notes
    exactly which exports were answered 200."""

    def __init__(self, endpoint: str, exports_per_s: float, threads: int = 2) -> None:
        self.endpoint = f"{endpoint}/v1/traces"
        self.interval = threads / exports_per_s
        self.acked: list[str] = []
        self.answers: dict[int, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def start(self) -> Sender:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, n: int) -> None:
        with httpx.Client(timeout=5) as client:
            i = 0
            next_at = time.monotonic()
            while not self._stop.is_set():
                body, ids = _export(f"t{n}-{i}")
                i += 1
                try:
                    status = client.post(self.endpoint, content=body, headers={
                        "Content-Type": "application/x-protobuf"}).status_code
                except httpx.HTTPError:
                    status = 0  # the connection died with the process: not acknowledged
                with self._lock:
                    self.answers[status] = self.answers.get(status, 0) + 1
                    if status == 200:
                        self.acked += ids
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def _until(check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_kill_9_of_up_mid_stream_loses_no_acknowledged_span_and_shows_none_twice(
        tmp_path: Path) -> None:
    up = Service("up", "--data-dir", str(tmp_path), *PORTS)
    sender = Sender(up.otlp_http, exports_per_s=40).start()  # 800 spans/s
    time.sleep(2.5)
    up.kill()  # SIGKILL: no drain
    sender.stop()
    acked = set(sender.acked)
    assert len(acked) >= 500, sender.answers

    again = Service("up", "--data-dir", str(tmp_path), *PORTS)
    try:
        def stored() -> dict[str, int]:
            rows = again.query("SELECT span_id, count() AS n FROM samples GROUP BY span_id")
            found = {r["span_id"]: int(r["n"]) for r in rows}
            return found if acked <= found.keys() else {}

        found = _until(stored, 60)
        assert found, f"acknowledged spans missing after restart: {again.log_tail()}"
        twice = {span: n for span, n in found.items() if n > 1}
        assert not twice, f"{len(twice)} samples show more than once"

        def scored() -> bool:
            rows = again.query(
                "SELECT count(DISTINCT sample_id) AS n FROM scores WHERE sample_id IN "
                "(SELECT sample_id FROM samples)")
            return int(rows[0]["n"]) >= len(found)

        assert _until(scored, 60), "the watchers did not score every stored sample"
        duplicates = again.query(
            "SELECT sample_id, watcher, field, label, count() AS n FROM scores "
            "GROUP BY sample_id, watcher, field, label HAVING n > 1")
        assert duplicates == [], f"{len(duplicates)} scores show more than once"
    finally:
        assert again.stop() == 0


def test_a_full_log_answers_503_and_unready_then_recovers_when_room_returns(
        tmp_path: Path) -> None:
    """The store goes away, the log fills to its cap: exports get 503 with Retry-After and
    /readyz turns false; when the store is back, ingest catches up, commits, the log is
    truncated, and exports are taken again, all of the acknowledged ones stored."""
    store_dir = tmp_path / "store"
    server = _clickhouse_server(store_dir)
    config = tmp_path / "config.yaml"
    config.write_text(f"store:\n  url: http://127.0.0.1:{server[1]}\n  password: secret\n"
                      "wal:\n  segment_bytes: 65536\n  max_bytes: 524288\n")
    up = Service("--config", str(config), "up", "--no-watch", "--data-dir",
                 str(tmp_path / "agent"), *PORTS)
    try:
        acked: list[str] = []
        refused = None
        server[0].send_signal(signal.SIGKILL)  # the store is gone
        server[0].wait(30)
        for i in range(200):
            body, ids = _export(f"f{i}")
            response = httpx.post(f"{up.otlp_http}/v1/traces", content=body, timeout=10,
                                  headers={"Content-Type": "application/x-protobuf"})
            if response.status_code != 200:
                refused = response
                break
            acked += ids
        assert refused is not None, "the log never filled"
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert "write-ahead log full" in refused.text
        ready = httpx.get(f"{up.api}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["bus"] is False

        server = _clickhouse_server(store_dir, port=server[1])  # the store is back
        assert _until(lambda: httpx.get(f"{up.api}/readyz", timeout=10).status_code == 200,
                      60), up.log_tail()
        body, ids = _export("after")
        assert httpx.post(f"{up.otlp_http}/v1/traces", content=body, timeout=10, headers={
            "Content-Type": "application/x-protobuf"}).status_code == 200
        acked += ids

        def stored() -> bool:
            rows = up.query("SELECT count(DISTINCT span_id) AS n FROM samples")
            return int(rows[0]["n"]) >= len(acked)

        assert _until(stored, 60)
        rows = up.query("SELECT span_id FROM samples")
        assert sorted(r["span_id"] for r in rows) == sorted(acked)
    finally:
        assert up.stop() == 0
        server[0].terminate()
        server[0].wait(30)


def _clickhouse_server(data: Path, port: int = 0) -> tuple[subprocess.Popen[str], int]:
    """tests/clickhouse_http.py in its own process: the real engine behind ClickHouse's HTTP
    interface, so that the store can go away and come back while `up` runs."""
    script = Path(__file__).parent / "clickhouse_http.py"
    proc = subprocess.Popen([sys.executable, str(script), "--data", str(data), "--user",
                             "default", "--port", str(port)],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "CLICKHOUSE_HTTP_PASSWORD": "secret"})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        pytest.fail("the ClickHouse stand-in did not start")
    return proc, int(json.loads(line)["http"])


@pytest.mark.parametrize("before", ["scored", "never published"])
def test_samples_ingest_stored_before_a_crash_are_scored_once(tmp_path: Path,
                                                              before: str) -> None:
    """Ingest stored a batch and the process died before its offset was committed: the restart
    replays the spans, finds the samples stored, and sends them on to the watchers again,
    marked, so that they are scored if the crash came before they were published ("never
    published"), and not scored twice if they already were ("scored")."""
    calls = {f"m{i}": (f"question {i}", "I'm sorry, but I can't help with that.")
             for i in range(8)}
    with running_agent(tmp_path, watch=before == "scored") as agent:
        post(f"{agent.http_endpoint}/v1/traces", genai_request(calls))
        agent.flush()
        if before == "scored":
            assert agent.wait_for("SELECT count(DISTINCT sample_id) AS n FROM {db}.scores",
                                  len(calls)) == len(calls)
    offsets = tmp_path / "wal" / "offsets.json"
    committed = json.loads(offsets.read_text())
    committed["wk.spans"]["wk-ingest"] = 0  # the commit the crash prevented
    if before == "never published":  # nothing of what the first run published is left to read
        committed["wk.samples"] = {"wk-watch": 1_000_000}
    offsets.write_text(json.dumps(committed))

    with running_agent(tmp_path, watch=True) as agent:
        agent.flush()
        assert agent.wait_for("SELECT count(DISTINCT sample_id) AS n FROM {db}.scores",
                              len(calls)) == len(calls)
        time.sleep(1)  # what else the watchers would do, they have done by now
        assert agent.query("SELECT count() AS n FROM {db}.samples")[0]["n"] == len(calls)
        assert agent.query("SELECT sample_id, watcher, field, label, count() AS n "
                           "FROM {db}.scores GROUP BY ALL HAVING n > 1") == []


def test_rows_besides_samples_are_stored_once_after_a_crash_before_the_commit(
        tmp_path: Path) -> None:
    """The same crash for what a trace brings besides its LLM calls: the retrieval span beside
    a call, an end user's feedback and an evaluation event. Replayed, each is found stored and
    not inserted again, so a plain query never shows one twice."""
    from opentelemetry.trace import set_span_in_context

    from watchkeeper.collectors import evaluation, feedback, instrument, llm_call

    def send(agent: Any) -> None:
        with instrument("rag-bot", agent.http_endpoint, instrument_openai=False,
                        set_global=False) as wk:
            tracer = wk.tracer_provider.get_tracer("app")
            for i in range(3):
                with tracer.start_as_current_span(f"answer {i}") as root:
                    with tracer.start_as_current_span("retrieve",
                                                      context=set_span_in_context(root)):
                        pass
                    with llm_call(model="m", prompt=f"question {i}") as call:
                        call.record(output=f"answer {i}")
                feedback(call=call, thumbs="up" if i else "down")
                evaluation(call, name="grounded", score=0.5 + i / 10, evaluator="checker")
            assert wk.force_flush(10_000)

    counts = {"spans": "SELECT count() AS n FROM {db}.spans",
              "feedback": "SELECT count() AS n FROM {db}.user_feedback",
              "events": "SELECT count() AS n FROM {db}.scores WHERE source = 'event'",
              "samples": "SELECT count() AS n FROM {db}.samples"}
    with running_agent(tmp_path) as agent:
        send(agent)
        agent.flush()
        assert agent.wait_for(counts["events"], 3) == 3
        first = {name: agent.query(sql)[0]["n"] for name, sql in counts.items()}
    assert first["spans"] >= 6 and first["feedback"] == 3 and first["samples"] == 3
    offsets = tmp_path / "wal" / "offsets.json"
    committed = json.loads(offsets.read_text())
    committed["wk.spans"]["wk-ingest"] = 0  # the commit the crash prevented
    offsets.write_text(json.dumps(committed))

    with running_agent(tmp_path) as agent:
        agent.flush()
        time.sleep(1)  # the replayed stretch is stored, or found stored, by now
        again = {name: agent.query(sql)[0]["n"] for name, sql in counts.items()}
    assert again == first


def test_an_export_sent_again_is_stored_once(tmp_path: Path) -> None:
    """A client that got no answer sends its export again (the process died after logging it,
    or the answer was lost): the copy's samples are dropped, not stored beside the first, and
    not scored twice; so are its other spans, its end users' feedback and the evaluations it
    carries."""
    request = ExportTraceServiceRequest.FromString(_export("resent")[0])
    ids = [span.span_id.hex() for span in request.resource_spans[0].scope_spans[0].spans]
    spans = request.resource_spans[0].scope_spans[0].spans
    now = time.time_ns()
    for i, llm in enumerate(list(spans)):
        spans.add(trace_id=llm.trace_id, span_id=os.urandom(8), name=f"retrieve {i}",
                  start_time_unix_nano=now, end_time_unix_nano=now + 1_000)
        rating = spans.add(trace_id=llm.trace_id, span_id=os.urandom(8), name="gen_ai.feedback",
                           start_time_unix_nano=now, end_time_unix_nano=now + 1_000)
        rating.attributes.add(key="watchkeeper.feedback.span_id").value.string_value = (
            llm.span_id.hex())
        rating.attributes.add(key="watchkeeper.feedback.thumbs").value.string_value = "up"
        event = llm.events.add(name="gen_ai.evaluation.result", time_unix_nano=now)
        event.attributes.add(key="gen_ai.evaluation.name").value.string_value = "grounded"
        event.attributes.add(key="gen_ai.evaluation.score.value").value.double_value = 0.5
    body = request.SerializeToString()
    twice = ("SELECT span_id, count() AS n FROM {db}.%s GROUP BY span_id HAVING n > 1")
    with running_agent(tmp_path, watch=True) as agent:
        assert post(f"{agent.http_endpoint}/v1/traces", body).is_success
        assert agent.wait_for("SELECT count() AS n FROM {db}.samples", len(ids)) == len(ids)
        assert agent.wait_for("SELECT count() AS n FROM {db}.user_feedback", len(ids)) == len(ids)
        events = "SELECT count() AS n FROM {db}.scores WHERE source = 'event'"
        assert agent.wait_for(events, len(ids)) == len(ids)
        stored_spans = agent.query("SELECT count() AS n FROM {db}.spans")[0]["n"]
        assert stored_spans >= len(ids)
        assert post(f"{agent.http_endpoint}/v1/traces", body).is_success
        agent.flush()
        time.sleep(1.5)  # a second copy would be stored and scored by now
        rows = agent.query("SELECT span_id, count() AS n FROM {db}.samples GROUP BY span_id")
        scores = agent.query("SELECT sample_id, watcher, label, field, count() AS n "
                             "FROM {db}.scores GROUP BY ALL HAVING n > 1")
        assert agent.query("SELECT count() AS n FROM {db}.spans")[0]["n"] == stored_spans
        assert agent.query(events)[0]["n"] == len(ids)
        assert agent.query(twice % "spans") == agent.query(twice % "user_feedback") == []
    assert sorted(r["span_id"] for r in rows) == sorted(ids)
    assert {r["n"] for r in rows} == {1} and scores == []
