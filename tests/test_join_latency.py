"""The join window holds a GenAI span only as long as its content may still come: a span that
carries its content is stored at the next flush, one whose content travels as log records when
they arrived (input and output) or when the window ends; offsets never pass what is held."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from watchkeeper.agent.bus import SIGNAL_HEADER, TOPIC_SPANS, Record
from watchkeeper.agent.bus.embedded import EmbeddedBus
from watchkeeper.agent.config import IngestConfig, StoreConfig
from watchkeeper.agent.ingest.decode import Decoder, PreparedRow
from watchkeeper.agent.ingest.joiner import Joiner
from watchkeeper.agent.ingest.service import IngestService
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import migrate
from watchkeeper.collectors.normalise import NormaliseOptions, native
from watchkeeper.collectors.normalise.otlp import LogView, SpanView

FIXTURES = Path(__file__).parent / "fixtures" / "otlp"
LONG_WINDOW_S = 30.0  # what a span must not wait for
P0 = ("wk.spans", 0)
PATHS = ["off", pytest.param("on", marks=pytest.mark.skipif(
    not native.AVAILABLE, reason="watchkeeper-native is not installed"))]
LOGS = ((SIGNAL_HEADER, b"logs"),)
CONTENT_ON_SPAN = {"contrib-openai-v2-legacy-events": 0, "contrib-openai-v2-log-records": 0,
                   "openllmetry-0.62-log-records": 0, "openlit-1.44": 3}


# -- the join window alone, on a clock of its own --------------------------------------------
def _row(span_id: str, has_content: bool) -> PreparedRow:
    view = SpanView("t", span_id, "", "chat", "client", 1, 2, "ok", "", {}, [], {}, "x")
    return PreparedRow.from_view(view, has_content=has_content)


def _log(name: str, span_id: str, **attributes: str) -> LogView:
    return LogView("t", span_id, name, 1, attributes, {"content": name}, {}, "x")


def test_a_span_with_its_content_leaves_at_the_next_flush_with_the_logs_read_with_it() -> None:
    joiner = Joiner(window_s=LONG_WINDOW_S)
    joiner.add_span(_row("a", has_content=True), (P0, 0), now=0.0)
    joiner.add_log(_log("gen_ai.choice", "a"), (P0, 1), now=0.0)  # same poll, before the flush
    assert joiner.complete == 1
    joined, _ = joiner.due(now=0.0)
    assert [(j.row.span_id, [log.event_name for log in j.logs]) for j in joined] == [
        ("a", ["gen_ai.choice"])]
    joiner.add_log(_log("gen_ai.choice", "a"), (P0, 2), now=0.1)  # too late: an orphan
    assert joiner.due(now=0.2) == ([], [])
    assert len(joiner.due(now=2 * LONG_WINDOW_S + 0.1)[1]) == 1


@pytest.mark.parametrize("logs", [
    [("gen_ai.user.message", {}), ("gen_ai.choice", {})],
    [("gen_ai.client.inference.operation.details", {"gen_ai.input.messages": "[]"}),
     ("gen_ai.client.inference.operation.details", {"gen_ai.output.messages": "[]"})],
])
def test_a_span_without_content_leaves_once_its_input_and_output_came(
        logs: list[tuple[str, dict[str, str]]]) -> None:
    joiner = Joiner(window_s=LONG_WINDOW_S)
    (first, first_attrs), (second, second_attrs) = logs
    joiner.add_log(_log(first, "b", **first_attrs), (P0, 0), now=0.0)  # before its span
    joiner.add_span(_row("b", has_content=False), (P0, 1), now=0.1)
    assert joiner.due(now=0.2) == ([], [])  # the input only: it waits
    joiner.add_log(_log(second, "b", **second_attrs), (P0, 2), now=0.3)
    joined, _ = joiner.due(now=0.3)
    assert [len(j.logs) for j in joined] == [2]
    assert len(joiner) == 0


def test_a_span_without_content_or_logs_leaves_as_its_window_ends() -> None:
    joiner = Joiner(window_s=1.0)
    joiner.add_span(_row("c", has_content=False), (P0, 0), now=10.0)
    assert joiner.due(now=10.99) == ([], [])
    assert [j.row.span_id for j in joiner.due(now=11.0)[0]] == ["c"]


# -- ingest with a real bus and store ---------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"chdb://{tmp_path / 'ch'}", StoreConfig())
    migrate(store)
    yield store
    store.close()


@pytest.fixture
def bus() -> Iterator[EmbeddedBus]:
    bus = EmbeddedBus()
    yield bus
    bus.close()


def _service(bus: EmbeddedBus, store: Store, native_path: str = "off",
             window_s: float = LONG_WINDOW_S) -> IngestService:
    return IngestService(bus, store, IngestConfig(join_window_s=window_s, flush_interval_s=0.05,
                                                  native=native_path))


def _stored(store: Store) -> int:
    return int(store.query(f"SELECT count() FROM {store.database}.samples").rows[0][0])


def _run_until(service: IngestService, store: Store, samples: int, timeout_s: float) -> float:
    """Run the loop as `run` does until `samples` are stored; seconds it took (inf: never)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        service.step(service._until_flush())
        service._settle()
        if _stored(store) >= samples:
            return time.monotonic() - started
    return float("inf")


def _span(trace: int, span: int, prompt: str | None) -> bytes:
    """A GenAI span, with its prompt on it (the latest conventions) or without content."""
    request = ExportTraceServiceRequest()
    now = time.time_ns()
    s = request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=bytes([trace]) * 16, span_id=bytes([span]) * 8, name="chat m",
        start_time_unix_nano=now, end_time_unix_nano=now)
    s.attributes.add(key="gen_ai.request.model").value.string_value = "m"
    if prompt is not None:
        s.attributes.add(key="gen_ai.input.messages").value.string_value = json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": prompt}]}])
    return request.SerializeToString()


def _event(trace: int, span: int, name: str, body: dict[str, object]) -> bytes:
    """A log record of the older GenAI event conventions, as instrumentations send them."""
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add(
        trace_id=bytes([trace]) * 16, span_id=bytes([span]) * 8, event_name=name)
    for key, value in body.items():
        record.body.kvlist_value.values.add(key=key).value.string_value = str(value)
    return request.SerializeToString()


def _rows(store: Store) -> list[dict[str, object]]:
    return store.query(f"SELECT span_id, prompt_text, completion_text, source "
                       f"FROM {store.database}.samples ORDER BY span_id").records()


@pytest.mark.parametrize("native_path", PATHS)
def test_a_span_with_content_is_stored_at_the_next_flush_with_its_logs_of_the_same_poll(
        bus: EmbeddedBus, store: Store, native_path: str) -> None:
    service = _service(bus, store, native_path)
    bus.publish(TOPIC_SPANS, _span(1, 1, "on the span"))
    bus.publish(TOPIC_SPANS, _event(1, 1, "gen_ai.choice", {"message": "from a log"}),
                headers=LOGS)
    bus.publish(TOPIC_SPANS, _span(2, 2, "alone"))
    assert _run_until(service, store, 2, timeout_s=10) < LONG_WINDOW_S / 3
    assert [(r["prompt_text"], r["completion_text"]) for r in _rows(store)] == [
        ("on the span", "from a log"), ("alone", "")]
    assert service.consumer.lag() == 0
    service.writer.close()


@pytest.mark.parametrize("native_path", PATHS)
def test_a_span_without_content_waits_for_its_logs_and_no_longer(
        bus: EmbeddedBus, store: Store, native_path: str) -> None:
    service = _service(bus, store, native_path)
    bus.publish(TOPIC_SPANS, _span(3, 3, None))
    assert _run_until(service, store, 1, timeout_s=0.5) == float("inf")
    bus.publish(TOPIC_SPANS, _event(3, 3, "gen_ai.user.message", {"content": "hello"}),
                headers=LOGS)
    assert _run_until(service, store, 1, timeout_s=0.5) == float("inf")  # no output yet
    assert service.consumer.lag() == 2  # held: nothing committed
    bus.publish(TOPIC_SPANS, _event(3, 3, "gen_ai.choice", {"message": "hi"}), headers=LOGS)
    assert _run_until(service, store, 1, timeout_s=10) < LONG_WINDOW_S / 3
    [row] = _rows(store)
    assert (row["prompt_text"], row["source"]) == ("hello", "genai_events")
    service.step(0.0)
    assert service.consumer.lag() == 0
    service.writer.close()


def test_a_span_without_content_or_logs_is_stored_as_its_window_ends(
        bus: EmbeddedBus, store: Store) -> None:
    service = _service(bus, store, window_s=0.5)
    bus.publish(TOPIC_SPANS, _span(4, 4, None))
    waited = _run_until(service, store, 1, timeout_s=10)
    assert 0.5 <= waited < 5
    service.writer.close()


@pytest.mark.parametrize("native_path", PATHS)
def test_offsets_are_never_committed_past_a_span_still_held(
        bus: EmbeddedBus, store: Store, native_path: str) -> None:
    service = _service(bus, store, native_path)
    bus.publish(TOPIC_SPANS, _span(5, 5, None))  # offset 0: waits for its logs
    bus.publish(TOPIC_SPANS, _span(6, 6, "stored at once"))  # offset 1
    assert _run_until(service, store, 1, timeout_s=10) < LONG_WINDOW_S / 3
    for _ in range(3):
        service.step(0.0)
    assert service.consumer.lag() == 2  # offset 1 is stored, but offset 0 is held
    for name in ("gen_ai.user.message", "gen_ai.choice"):
        bus.publish(TOPIC_SPANS, _event(5, 5, name, {"content": name}), headers=LOGS)
    assert _run_until(service, store, 2, timeout_s=10) < LONG_WINDOW_S / 3
    service.step(0.0)
    assert service.consumer.lag() == 0
    service.writer.close()


@pytest.mark.parametrize("case", ["contrib-openai-v2-log-records",
                                  "contrib-openai-v2-legacy-events"])
def test_captured_log_record_instrumentations_are_stored_once_their_logs_came(
        bus: EmbeddedBus, store: Store, case: str) -> None:
    """Their plain, streaming and PII calls send input and output as logs: stored at once;
    the failing call sends its input only, and waits for the window."""
    service = _service(bus, store)
    bus.publish(TOPIC_SPANS, (FIXTURES / case / "001-traces.binpb").read_bytes())
    bus.publish(TOPIC_SPANS, (FIXTURES / case / "002-logs.binpb").read_bytes(), headers=LOGS)
    assert _run_until(service, store, 3, timeout_s=10) < LONG_WINDOW_S / 3
    assert _stored(store) == 3 and len(service.joiner) == 1  # the failed call's span
    assert all(r["prompt_text"] and r["completion_text"] for r in _rows(store))
    service.writer.close()


@pytest.mark.skipif(not native.AVAILABLE, reason="watchkeeper-native is not installed")
@pytest.mark.parametrize("case", sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()))
def test_both_paths_tell_alike_whether_a_span_carries_its_content(
        bus: EmbeddedBus, case: str) -> None:
    record = Record(TOPIC_SPANS, 0, 0, None, (FIXTURES / case / "001-traces.binpb").read_bytes())
    found = [{row.span_id: row.has_content for row, _ in
              Decoder(bus, NormaliseOptions(), use_native).decode([record]).spans}
             for use_native in (False, True)]
    assert found[0] == found[1] and len(found[0]) == 4
    expected = CONTENT_ON_SPAN.get(case, 4)  # the four calls of a capture; openlit's failed
    assert sum(found[0].values()) == expected  # call has nothing on its span
