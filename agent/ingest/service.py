"""Ingest: wk.spans → normalise → ClickHouse (samples, spans, user_feedback) → wk.samples.

At least once: offsets are committed only after the insert, and never past an item still in
the join window. Replays land on the same sample ids, which ReplacingMergeTree folds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from watchkeeper.agent import metrics
from watchkeeper.agent.bus import (
    SIGNAL_HEADER,
    TOPIC_DEAD_LETTER,
    TOPIC_SAMPLES,
    TOPIC_SPANS,
    Bus,
    Record,
    TopicPartition,
)
from watchkeeper.agent.config import IngestConfig
from watchkeeper.agent.ingest.joiner import Joiner, Ref
from watchkeeper.agent.store import rows
from watchkeeper.agent.store.client import Store
from watchkeeper.collectors.normalise import (
    NormaliseOptions,
    Sample,
    is_feedback,
    is_llm_call,
    otlp,
    to_feedback,
    to_sample,
    to_span_record,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Batch:
    samples: dict[str, Sample] = field(default_factory=dict)
    spans: list[list[object]] = field(default_factory=list)
    feedback: list[list[object]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples) + len(self.spans) + len(self.feedback)


class IngestService:
    def __init__(self, bus: Bus, store: Store, config: IngestConfig) -> None:
        self.bus = bus
        self.store = store
        self.config = config
        self.options = NormaliseOptions(hash_user_ids=config.hash_user_ids,
                                        user_id_salt=config.user_id_salt.get_secret_value())
        self.consumer = bus.consumer(TOPIC_SPANS, config.group)
        self.joiner = Joiner(config.join_window_s)
        self._batch = _Batch()
        self._seen: dict[TopicPartition, int] = {}
        self._last_flush = time.monotonic()
        self.stored_samples = 0

    # -- one turn of the loop ---------------------------------------------------------------
    def step(self, timeout_s: float) -> int:
        records = self.consumer.poll(self.config.batch_max_rows, timeout_s)
        now = time.monotonic()
        for record in records:
            self._take(record, now)
            self._seen[(record.topic, record.partition)] = record.offset + 1
        if (now - self._last_flush >= self.config.flush_interval_s
                or len(self._batch) >= self.config.batch_max_rows):
            self.flush(now)
        metrics.INGEST_LAG.set(self.consumer.lag())
        metrics.INGEST_PENDING.set(len(self.joiner))
        return len(records)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step(min(self.config.flush_interval_s, 0.5))
        self.drain()

    def drain(self) -> None:
        """Take everything already on the bus, then flush the join window: used on SIGTERM."""
        while self.step(0.05):
            pass
        self.flush(time.monotonic(), force=True)
        log.info("ingest drained", extra={"stored_samples": self.stored_samples})

    # -- decoding -----------------------------------------------------------------------------
    def _take(self, record: Record, now: float) -> None:
        ref: Ref = ((record.topic, record.partition), record.offset)
        signal = (record.header(SIGNAL_HEADER) or b"traces").decode()
        metrics.INGEST_MESSAGES.labels(signal).inc()
        try:
            if signal == "logs":
                logs_request = ExportLogsServiceRequest.FromString(record.value)
                for item in otlp.logs(logs_request):
                    self.joiner.add_log(item, ref, now)
                return
            trace_request = ExportTraceServiceRequest.FromString(record.value)
            for span in otlp.spans(trace_request):
                if is_feedback(span):
                    self._batch.feedback.append(rows.feedback_row(to_feedback(span, self.options)))
                elif is_llm_call(span):
                    self.joiner.add_span(span, ref, now)
                else:
                    self._batch.spans.append(rows.span_row(to_span_record(span)))
        except Exception as exc:
            self._dead_letter(record, exc)

    def _dead_letter(self, record: Record, exc: Exception) -> None:
        metrics.INGEST_DEAD_LETTERS.inc()
        log.warning("message set aside to the dead-letter topic",
                    extra={"partition": record.partition, "offset": record.offset,
                           "error": f"{type(exc).__name__}: {exc}"})
        headers = (*record.headers,
                   ("wk-error", f"{type(exc).__name__}: {exc}".encode()[:1024]),
                   ("wk-source", f"{record.topic}/{record.partition}/{record.offset}".encode()))
        self.bus.publish(TOPIC_DEAD_LETTER, record.value, key=record.key, headers=headers)

    # -- storing ------------------------------------------------------------------------------
    def flush(self, now: float, force: bool = False) -> None:
        joined, orphans = self.joiner.due(now, force)
        for item in joined:
            sample = to_sample(item.span, item.logs, self.options)
            self._batch.samples[str(sample.sample_id)] = sample
        # Logs that never met their span: late duplicates of content the span already had
        # (streaming events without ids), or content of a span that was lost upstream.
        metrics.INGEST_ORPHAN_LOGS.inc(len(orphans))
        batch, self._batch = self._batch, _Batch()
        self._insert("samples", [rows.sample_row(s) for s in batch.samples.values()],
                     rows.SAMPLE_COLUMNS)
        self._insert("spans", batch.spans, rows.SPAN_COLUMNS)
        self._insert("user_feedback", batch.feedback, rows.FEEDBACK_COLUMNS)
        for sample in batch.samples.values():
            self.bus.publish(TOPIC_SAMPLES, sample.model_dump_json().encode(),
                             key=sample.trace_id.encode())
        self.stored_samples += len(batch.samples)
        self._commit()
        self._last_flush = now

    def _insert(self, table: str, data: list[list[object]], columns: tuple[str, ...]) -> None:
        if not data:
            return
        started = time.perf_counter()
        self.store.insert(table, data, columns)
        metrics.INGEST_INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
        metrics.INGEST_ROWS.labels(table).inc(len(data))

    def _commit(self) -> None:
        low: dict[TopicPartition, int] = defaultdict(lambda: 1 << 62)
        for tp, offset in self.joiner.refs():
            low[tp] = min(low[tp], offset)
        offsets = {tp: min(seen, low[tp]) if tp in low else seen
                   for tp, seen in self._seen.items()}
        if offsets:
            self.consumer.commit(offsets)

