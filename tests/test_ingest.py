"""Ingest: joining logs to spans, dead letters, duplicates, and offsets committed after insert."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from helpers import RunningAgent, chat_request, post
from watchkeeper.agent.bus import (
    SIGNAL_HEADER,
    TOPIC_DEAD_LETTER,
    TOPIC_SAMPLES,
    TOPIC_SPANS,
    BusError,
    Record,
    TopicPartition,
)
from watchkeeper.agent.bus.embedded import EmbeddedBus
from watchkeeper.agent.bus.samples import MESSAGE_BYTES, SAMPLES_PER_MESSAGE, pack, unpack
from watchkeeper.agent.config import IngestConfig, StoreConfig
from watchkeeper.agent.ingest.decode import PreparedRow
from watchkeeper.agent.ingest.joiner import Joiner
from watchkeeper.agent.ingest.offsets import OffsetTracker
from watchkeeper.agent.ingest.service import IngestService
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import migrate
from watchkeeper.collectors.normalise.otlp import LogView, SpanView

RESOURCE = {"service.name": "svc", "service.instance.id": "i-1"}


def _span(span_id: str = "s1") -> PreparedRow:
    return PreparedRow.from_view(
        SpanView("t1", span_id, "", "chat", "client", 1, 2, "ok", "", {}, [], RESOURCE, "x"))


def _log(name: str, span_id: str = "s1", trace_id: str = "t1") -> LogView:
    return LogView(trace_id, span_id, name, 1, {}, {"content": name}, RESOURCE, "x")


def test_joiner_logs_before_and_after_span() -> None:
    joiner = Joiner(window_s=1.0)
    ref = (("wk.spans", 0), 0)
    joiner.add_log(_log("gen_ai.user.message"), ref, now=0.0)
    joiner.add_span(_span(), ((("wk.spans", 0)), 1), now=0.5)
    assert joiner.due(now=0.6) == ([], [])  # the input came, the output not yet: it waits
    assert min(offset for _, offset in joiner.refs()) == 0
    joiner.add_log(_log("gen_ai.choice"), (("wk.spans", 0), 2), now=1.0)
    joined, orphans = joiner.due(now=1.0)  # both came: it leaves before its window ends
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
    assert isinstance(bus, EmbeddedBus)
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
    bus = EmbeddedBus(max_backlog=3)
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


# -- the offset tracker ------------------------------------------------------------------------
P0, P1 = (TOPIC_SPANS, 0), (TOPIC_SPANS, 1)


class _Consumer:
    """A consumer that records commits and revokes partitions in its next poll, as Kafka's does."""

    def __init__(self, on_revoke: Callable[[Iterable[TopicPartition]], None]) -> None:
        self.on_revoke = on_revoke
        self.commits: list[dict[TopicPartition, int]] = []
        self.horizon: dict[TopicPartition, int] = {}
        self.revoke_next: list[TopicPartition] = []
        self.fail_commit = False

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        if self.revoke_next:
            self.on_revoke(self.revoke_next)
            self.revoke_next = []
        return []

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail_commit:
            raise BusError("broker away")
        self.commits.append(dict(offsets))

    def replay_horizon(self) -> dict[TopicPartition, int]:
        return dict(self.horizon)


class _Bus:
    def consumer(self, topic: str, group: str,
                 on_revoke: Callable[[Iterable[TopicPartition]], None]) -> _Consumer:
        self.made = _Consumer(on_revoke)
        return self.made


def _tracker() -> tuple[OffsetTracker, _Consumer, list[set[TopicPartition]]]:
    bus, dropped = _Bus(), []
    tracker = OffsetTracker(bus, TOPIC_SPANS, "g", on_revoke=dropped.append)  # type: ignore[arg-type]
    return tracker, bus.made, dropped


def _read(tracker: OffsetTracker, partition: int, offsets: range) -> None:
    tracker.read([Record(TOPIC_SPANS, partition, o, None, b"") for o in offsets])


def test_a_commit_never_passes_an_item_still_held() -> None:
    tracker, consumer, _ = _tracker()
    _read(tracker, 0, range(10))
    _read(tracker, 1, range(5))
    tracker.stage([(P0, 7), (P0, 3)])  # the join window still holds offsets 3 and 7 of p0
    assert consumer.commits == []  # nothing until the batch is stored
    tracker.commit_staged()
    assert consumer.commits == [{P0: 3, P1: 5}]
    tracker.commit_staged()  # committed once: nothing is staged any more
    tracker.stage([(P0, 3)])
    tracker.commit_staged()  # the same offsets again: not committed twice
    _read(tracker, 0, range(10, 12))
    tracker.stage([])  # the window let them go, into the next batch
    tracker.commit_staged()
    assert consumer.commits == [{P0: 3, P1: 5}, {P0: 12, P1: 5}]


def test_a_batch_that_was_not_stored_commits_nothing() -> None:
    tracker, consumer, _ = _tracker()
    _read(tracker, 0, range(4))
    tracker.stage([])  # its batch fails: commit_staged is never called for it
    _read(tracker, 0, range(4, 6))
    tracker.stage([])  # the retry, with the newer rows
    assert consumer.commits == []
    consumer.fail_commit = True
    tracker.commit_staged()  # a failed commit is logged, not raised; the next one catches up
    assert consumer.commits == []
    consumer.fail_commit = False
    tracker.stage([])
    tracker.commit_staged()
    assert consumer.commits == [{P0: 6}]


def test_revoked_partitions_are_dropped_and_not_committed() -> None:
    tracker, consumer, dropped = _tracker()
    consumer.horizon = {P0: 5, P1: 5}
    tracker.poll(10, 0)  # assigned: each partition's horizon as the consumer noted it
    assert tracker.replayed((P0, 4)) and not tracker.replayed((P0, 5))
    _read(tracker, 0, range(3))
    _read(tracker, 1, range(3))
    tracker.stage([])
    consumer.revoke_next, consumer.horizon = [P1], {P0: 5}
    tracker.poll(10, 0)
    assert dropped == [{P1}]  # the join window and the batch drop what came from p1
    assert not tracker.replayed((P1, 4))
    tracker.commit_staged()
    assert consumer.commits == [{P0: 3}]
    _read(tracker, 0, range(3, 4))
    tracker.stage([])
    tracker.commit_staged()
    assert consumer.commits == [{P0: 3}, {P0: 4}]  # p1 is its new owner's to commit


def test_a_batch_that_failed_is_not_committed_and_lands_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(f"chdb://{tmp_path / 'ch'}", StoreConfig())
    migrate(store)
    bus = EmbeddedBus()
    service = IngestService(bus, store, IngestConfig(join_window_s=0, flush_interval_s=60))
    for i in range(3):
        bus.publish(TOPIC_SPANS, chat_request(10, f"f{i}"))
    failures = [RuntimeError("connection lost")]

    def landing_then_failing(insert: Callable[..., None]) -> Callable[..., None]:
        def flaky(*args: object) -> None:
            insert(*args)  # the rows land, but the writer hears of a failure
            if failures:
                raise failures.pop()
        return flaky

    for name in ("insert_json", "insert_row_binary"):
        monkeypatch.setattr(store, name, landing_then_failing(getattr(store, name)))
    service.step(0.1)
    service.flush(time.monotonic(), force=True)
    assert not failures and service.consumer.lag() == 3  # landed, but failed: not committed
    bus.publish(TOPIC_SPANS, chat_request(10, "later"))  # the retry goes with newer rows
    service.step(0.1)
    service.flush(time.monotonic(), force=True)  # checks every sample of the failed batch
    assert service.consumer.lag() == 0
    counted = store.query(f"SELECT count(), uniqExact(sample_id) FROM {store.database}.samples")
    assert counted.rows == [(40, 40)]  # without FINAL: no sample twice
    store.close()
