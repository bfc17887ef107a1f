"""Ingest: joining logs to spans, dead letters, duplicates, and offsets committed after insert."""

from __future__ import annotations

import json
import time

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from helpers import RunningAgent, post
from watchkeeper.agent.bus import (
    SIGNAL_HEADER,
    TOPIC_DEAD_LETTER,
    TOPIC_SAMPLES,
    TOPIC_SPANS,
    BusError,
)
from watchkeeper.agent.bus.memory import MemoryBus
from watchkeeper.agent.bus.samples import MESSAGE_BYTES, SAMPLES_PER_MESSAGE, pack, unpack
from watchkeeper.agent.ingest.joiner import Joiner
from watchkeeper.collectors.normalise.otlp import LogView, SpanView

RESOURCE = {"service.name": "svc", "service.instance.id": "i-1"}


def _span(span_id: str = "s1") -> SpanView:
    return SpanView("t1", span_id, "", "chat", "client", 1, 2, "ok", "", {}, [], RESOURCE, "x")


def _log(name: str, span_id: str = "s1", trace_id: str = "t1") -> LogView:
    return LogView(trace_id, span_id, name, 1, {}, {"content": name}, RESOURCE, "x")


def test_joiner_logs_before_and_after_span() -> None:
    joiner = Joiner(window_s=1.0)
    ref = (("wk.spans", 0), 0)
    joiner.add_log(_log("gen_ai.user.message"), ref, now=0.0)
    joiner.add_span(_span(), ((("wk.spans", 0)), 1), now=0.5)
    joiner.add_log(_log("gen_ai.choice"), (("wk.spans", 0), 2), now=1.0)
    assert joiner.due(now=1.2) == ([], [])  # still inside the window
    assert min(offset for _, offset in joiner.refs()) == 0
    joined, orphans = joiner.due(now=1.6)
    assert [log.event_name for log in joined[0].logs] == ["gen_ai.user.message", "gen_ai.choice"]
    assert orphans == [] and list(joiner.refs()) == []


def test_joiner_adopts_an_idless_choice_of_the_same_process() -> None:
    joiner = Joiner(window_s=1.0)
    ref = (("wk.spans", 0), 0)
    joiner.add_log(_log("gen_ai.user.message"), ref, now=0.0)
    joiner.add_log(_log("gen_ai.choice", span_id="", trace_id=""), ref, now=0.1)
    joiner.add_span(_span(), ref, now=0.2)
    joined, orphans = joiner.due(now=5.0)
    assert [log.event_name for log in joined[0].logs] == ["gen_ai.user.message", "gen_ai.choice"]
    assert orphans == []


def test_orphan_logs_leave_after_two_windows() -> None:
    joiner = Joiner(window_s=1.0)
    joiner.add_log(_log("gen_ai.user.message", span_id="nobody"), (("wk.spans", 0), 0), now=0.0)
    assert joiner.due(now=1.5) == ([], [])
    _, orphans = joiner.due(now=2.5)
    assert len(orphans) == 1


def _chat(trace: bytes, span: bytes, text: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    s = request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=trace, span_id=span, name="chat m")
    s.attributes.add(key="gen_ai.request.model").value.string_value = "m"
    s.attributes.add(key="gen_ai.input.messages").value.string_value = json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": text}]}])
    return request


def test_garbage_goes_to_dead_letter_and_the_rest_flows(agent: RunningAgent) -> None:
    bus = agent.runtime.bus
    assert isinstance(bus, MemoryBus)
    dead = bus.consumer(TOPIC_DEAD_LETTER, "test")
    bus.publish(TOPIC_SPANS, b"\x00garbage\xff", key=b"k")
    bus.publish(TOPIC_SPANS, b"\x12\x34", headers=((SIGNAL_HEADER, b"logs"),))
    assert post(f"{agent.http_endpoint}/v1/traces",
                _chat(b"\x01" * 16, b"\x01" * 8, "after garbage").SerializeToString()).is_success
    assert agent.wait_for("SELECT count() AS n FROM {db}.samples", 1) == 1
    records = dead.poll(10, 5.0)
    assert len(records) == 2
    assert b"DecodeError" in (records[0].header("wk-error") or b"")
    assert records[0].header("wk-source") == b"wk.spans/0/0"
    assert records[0].value == b"\x00garbage\xff"


def test_replayed_spans_are_one_sample(agent: RunningAgent) -> None:
    body = _chat(b"\x02" * 16, b"\x02" * 8, "same call").SerializeToString()
    for _ in range(3):  # an exporter retrying after a timeout sends the same spans again
        assert post(f"{agent.http_endpoint}/v1/traces", body).is_success
    agent.flush()
    assert agent.wait_for("SELECT count() AS n FROM {db}.samples FINAL", 1) == 1
    assert agent.query("SELECT uniqExact(sample_id) AS n FROM {db}.samples")[0]["n"] == 1


def test_samples_are_published_for_watchers(agent: RunningAgent) -> None:
    bus = agent.runtime.bus
    assert bus is not None
    samples = bus.consumer(TOPIC_SAMPLES, "watch-test")
    body = _chat(b"\x03" * 16, b"\x03" * 8, "to the watchers").SerializeToString()
    assert post(f"{agent.http_endpoint}/v1/traces", body).is_success
    records = samples.poll(10, 10.0)
    lines = [line for r in records for line in unpack(r.value)]
    assert [json.loads(line)["prompt_text"] for line in lines] == ["to the watchers"]


def test_sample_messages_hold_many_samples_in_order() -> None:
    lines = [json.dumps({"n": i}).encode() for i in range(SAMPLES_PER_MESSAGE * 2 + 5)]
    messages = list(pack(lines))
    assert [len(unpack(m)) for m in messages] == [SAMPLES_PER_MESSAGE, SAMPLES_PER_MESSAGE, 5]
    assert [line for m in messages for line in unpack(m)] == lines
    big = b'"' + b"x" * MESSAGE_BYTES + b'"'
    messages = list(pack([b"1", big, b"2"]))  # the large one travels alone, order is kept
    assert messages == [b"1", big, b"2"]
    lines = [b"7" * 20_000] * 100  # 64 of these would pass MESSAGE_BYTES
    messages = list(pack(lines))
    assert len(messages) > 2 and all(len(m) <= MESSAGE_BYTES for m in messages)
    assert sum(len(unpack(m)) for m in messages) == 100


def test_commit_waits_for_the_join_window(agent_factory: object) -> None:
    with agent_factory(**{"ingest.join_window_s": 30}) as agent:  # type: ignore[operator]
        logs = ExportLogsServiceRequest()
        record = logs.resource_logs.add().scope_logs.add().log_records.add(
            trace_id=b"\x04" * 16, span_id=b"\x04" * 8, event_name="gen_ai.user.message")
        record.body.kvlist_value.values.add(key="content").value.string_value = "hold me"
        assert post(f"{agent.http_endpoint}/v1/logs", logs.SerializeToString()).is_success
        ingest = agent.runtime._ingest
        assert ingest is not None
        time.sleep(0.5)
        assert ingest.consumer.lag() == 1  # read, but not committed while it waits
    # the drain on stop flushed it (as an orphan: its span never came)


def test_memory_bus_commit_lag_and_backpressure() -> None:
    bus = MemoryBus(max_backlog=3)
    consumer = bus.consumer("t", "g")
    for i in range(3):
        bus.publish("t", bytes([i]))
    with pytest.raises(BusError):
        bus.publish("t", b"x")
    batch = consumer.poll(10, 0.1)
    assert [r.offset for r in batch] == [0, 1, 2] and consumer.lag() == 3
    consumer.commit({("t", 0): 3})
    assert consumer.lag() == 0
    bus.publish("t", b"y")  # room again after the commit
    again = bus.consumer("t", "g")  # a restarted consumer resumes at the committed offset
    assert [r.offset for r in again.poll(10, 0.1)] == [3]
    for i in range(10):  # a topic nobody reads keeps only the newest
        bus.publish("unread", bytes([i]))
    assert bus.backlog("unread") == 3
