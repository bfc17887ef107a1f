"""Ingest: wk.spans → normalise → ClickHouse (samples, spans, user_feedback) → wk.samples.

At least once: offsets are committed only after the insert (and after wk.samples holds the
published samples), and never past an item still in the join window. A batch is stored on a
writer thread while the next one is read and decoded (both the insert and the compiled decoder
run without the GIL); one batch is in flight at a time, so a slow store slows reading down,
and none while polling, where rebalances happen.
A replay must not show a sample twice even to queries without FINAL, so samples from the
stretch of a partition that an earlier owner may already have stored are checked against the
table before they are inserted; beyond that stretch, ids are new by construction (one
partition, one owner).
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from watchkeeper.agent import metrics
from watchkeeper.agent.bus import (
    SIGNAL_HEADER,
    TOPIC_SAMPLES,
    TOPIC_SPANS,
    Bus,
    BusError,
    Record,
    TopicPartition,
    dead_letter,
)
from watchkeeper.agent.bus.samples import pack
from watchkeeper.agent.config import IngestConfig
from watchkeeper.agent.ingest.joiner import Joiner, Ref
from watchkeeper.agent.lifecycle import LoopService
from watchkeeper.agent.store import rows
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.tables import SAMPLES, SPANS, USER_FEEDBACK, Table
from watchkeeper.collectors.normalise import (
    NormaliseOptions,
    is_feedback,
    is_llm_call,
    native,
    otlp,
    to_feedback,
    to_sample,
    to_span_record,
)
from watchkeeper.collectors.normalise.native import PreparedSample

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def _collector_paused(method: F) -> F:
    """Run a batch with Python's cyclic garbage collector paused. A batch holds thousands of
    samples, all alive until the insert, and full collections during it scan each of them
    again and again for nothing: a quarter of ingest's time in bench/ingest_throughput.py.
    Reference counting still frees everything outside cycles; the collector resumes after."""

    @functools.wraps(method)
    def paused(*args: Any, **kwargs: Any) -> Any:
        if not gc.isenabled():  # someone else paused it: leave it as it is
            return method(*args, **kwargs)
        gc.disable()
        try:
            return method(*args, **kwargs)
        finally:
            gc.enable()

    return cast(F, paused)


LAG_EVERY_S = 5.0
PUBLISH_TIMEOUT_S = 30.0
READ_AHEAD = 4  # batches' worth of messages per poll: each is written while the next decodes
DECODE_CHUNK = 1000  # messages decoded at once by the compiled path
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(microseconds=1)


@dataclass(slots=True)
class _Batch:
    # sample id: (JSON line, ts in µs, RowBinary row from the compiled path or None)
    samples: dict[str, tuple[bytes, int, bytes | None]] = field(default_factory=dict)
    partition_of: dict[str, TopicPartition] = field(default_factory=dict)
    maybe_stored: set[str] = field(default_factory=set)  # sample ids from a replayed stretch
    spans: list[bytes] = field(default_factory=list)  # JSON rows (rows.json_row)
    feedback: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples) + len(self.spans) + len(self.feedback)

    def absorb(self, newer: _Batch) -> None:
        self.samples.update(newer.samples)
        self.partition_of.update(newer.partition_of)
        self.maybe_stored |= newer.maybe_stored
        self.spans += newer.spans
        self.feedback += newer.feedback


@dataclass(slots=True)
class _Write:
    """A batch being stored on the writer thread, and the offsets its success makes safe."""

    batch: _Batch
    offsets: dict[TopicPartition, int]
    done: Future[None]


class IngestService(LoopService):
    name = "ingest"

    def __init__(self, bus: Bus, store: Store, config: IngestConfig) -> None:
        self.bus = bus
        self.store = store
        self.config = config
        self.options = NormaliseOptions(hash_user_ids=config.hash_user_ids,
                                        user_id_salt=config.user_id_salt.get_secret_value())
        self.consumer = bus.consumer(TOPIC_SPANS, config.group, on_revoke=self._on_revoke)
        self.joiner = Joiner(config.join_window_s)
        self.native = config.native != "off" and native.AVAILABLE
        self._batch = _Batch()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wk-ingest-writer")
        self._inflight: _Write | None = None
        self._seen: dict[TopicPartition, int] = {}
        self._last_flush = time.monotonic()
        self._last_lag = 0.0
        self.stored_samples = 0
        self._messages = {signal: metrics.INGEST_MESSAGES.labels(signal)
                          for signal in ("traces", "logs")}

    # -- one turn of the loop ---------------------------------------------------------------
    def step(self, timeout_s: float) -> int:
        # A rebalance happens inside poll: a write straddling it could no longer commit its
        # offsets, and the partitions' new owner would store its samples a second time.
        self._settle()
        records = self.consumer.poll(self.config.batch_max_rows * READ_AHEAD, timeout_s)
        now = time.monotonic()
        for start in range(0, len(records), DECODE_CHUNK):
            chunk = records[start:start + DECODE_CHUNK]
            logs = 0
            for record, decoded in zip(chunk, self._decode_natively(chunk), strict=True):
                logs += self._take(record, now, decoded)
                self._seen[(record.topic, record.partition)] = record.offset + 1
            self._messages["logs"].inc(logs)  # counted per chunk: a counter costs µs a call
            self._messages["traces"].inc(len(chunk) - logs)
            self._collect(now)
            if len(self._batch) >= self.config.batch_max_rows:
                self._write(now)  # stored while the next chunk is decoded
        if now - self._last_flush >= self.config.flush_interval_s:
            self.flush(now)
        if now - self._last_lag >= LAG_EVERY_S:
            metrics.INGEST_LAG.set(self.consumer.lag())
            self._last_lag = now
        metrics.INGEST_PENDING.set(len(self.joiner))
        return len(records)

    def _on_revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions went to another consumer, which replays them from the last commit: what
        we hold from them is dropped rather than stored behind the new owner's back."""
        lost = set(partitions)  # (nothing is in flight: step settles before it polls)
        dropped = self.joiner.drop(lost)
        for key in [k for k, tp in self._batch.partition_of.items() if tp in lost]:
            self._batch.samples.pop(key, None)
            self._batch.maybe_stored.discard(key)
            del self._batch.partition_of[key]
        for tp in lost:
            self._seen.pop(tp, None)
        log.info("partitions revoked", extra={"partitions": sorted(lost), "dropped": dropped})

    def run(self, stop: threading.Event) -> None:
        """The loop outlives a broker or database outage: it logs, waits and carries on."""
        while not stop.is_set():
            try:
                self.step(min(self.config.flush_interval_s, 0.5))
            except Exception:
                log.exception("ingest step failed, retrying")
                metrics.INGEST_STORE_ERRORS.inc()
                stop.wait(1.0)
        self.drain_bus()
        self._writer.shutdown()
        self.consumer.close()

    def drain_bus(self) -> None:
        """Take everything already on the bus, then flush the join window: used on SIGTERM.
        Whatever cannot be stored now stays uncommitted on the bus for the next start."""
        try:
            while self.step(0.05):
                pass
        except Exception:
            log.exception("bus unavailable while draining; storing what is held")
        self.flush(time.monotonic(), force=True)
        log.info("ingest drained", extra={"stored_samples": self.stored_samples})

    # -- decoding -----------------------------------------------------------------------------
    def _decode_natively(self, records: list[Record]) -> list[native.Decoded | None]:
        """The trace messages through the compiled path, all at once; None for the others
        (log records, or the compiled path not in use) and for what does not decode."""
        if not self.native:
            return [None] * len(records)
        traces = [i for i, r in enumerate(records) if r.header(SIGNAL_HEADER) != b"logs"]
        results: list[native.Decoded | None] = [None] * len(records)
        if traces:
            decoded = native.decode_traces([records[i].value for i in traces], self.options)
            for i, result in zip(traces, decoded, strict=True):
                results[i] = result
        return results

    def _take(self, record: Record, now: float, decoded: native.Decoded | None) -> bool:
        """Returns whether the message held log records (otherwise spans)."""
        ref = ((record.topic, record.partition), record.offset)
        is_logs = record.header(SIGNAL_HEADER) == b"logs"
        try:
            if is_logs:
                logs_request = ExportLogsServiceRequest.FromString(record.value)
                for item in otlp.logs(logs_request):
                    self.joiner.add_log(item, ref, now)
                return True
            deferred = None  # the positions of spans the compiled path left to Python; all
            if decoded is not None:
                for prepared in decoded.samples:
                    self.joiner.add_span(prepared, ref, now)
                self._batch.spans += decoded.span_rows
                if not decoded.deferred:
                    return False
                deferred = decoded.deferred
            trace_request = ExportTraceServiceRequest.FromString(record.value)
            for i, span in enumerate(otlp.spans(trace_request)):
                if deferred is None or i in deferred:
                    self._take_span(span, ref, now)
        except Exception as exc:
            self._dead_letter(record, exc)
        return is_logs

    def _take_span(self, span: otlp.SpanView, ref: Ref, now: float) -> None:
        if is_feedback(span):
            self._batch.feedback.append(rows.json_row(to_feedback(span, self.options)))
        elif is_llm_call(span):
            self.joiner.add_span(span, ref, now)
        else:
            self._batch.spans.append(rows.json_row(to_span_record(span)))

    def _dead_letter(self, record: Record, exc: Exception) -> None:
        metrics.INGEST_DEAD_LETTERS.inc()
        log.warning("message set aside to the dead-letter topic",
                    extra={"partition": record.partition, "offset": record.offset,
                           "error": f"{type(exc).__name__}: {exc}"})
        dead_letter(self.bus, record, exc).result(PUBLISH_TIMEOUT_S)

    # -- storing ------------------------------------------------------------------------------
    def flush(self, now: float, force: bool = False) -> None:
        """Store what the join window has released (with force: everything it holds)."""
        self._collect(now, force)
        self._write(now)
        if force:
            self._settle()

    @_collector_paused
    def _collect(self, now: float, force: bool = False) -> None:
        joined, orphans = self.joiner.due(now, force)
        horizon = self.consumer.replay_horizon()
        for item in joined:
            span = item.span
            row: tuple[bytes, int, bytes | None]
            if isinstance(span, PreparedSample):
                key, row = span.sample_id, (span.line, span.ts_us, span.row_binary)
            else:
                sample = to_sample(span, item.logs, self.options)
                key, row = str(sample.sample_id), (rows.json_row(sample), _micros(sample.ts), None)
            self._batch.samples[key] = row
            tp, offset = item.ref
            self._batch.partition_of[key] = tp
            if offset < horizon.get(tp, 0):
                self._batch.maybe_stored.add(key)
        # Logs that never met their span: late duplicates of content the span already had
        # (streaming events without ids), or content of a span that was lost upstream.
        metrics.INGEST_ORPHAN_LOGS.inc(len(orphans))

    def _write(self, now: float) -> None:
        """Hand the batch to the writer thread; one batch is in flight at a time."""
        self._last_flush = now
        self._settle()
        batch, self._batch = self._batch, _Batch()
        self._inflight = _Write(batch, self._offsets(), self._writer.submit(self._store, batch))

    def _settle(self) -> None:
        """Wait for the batch in flight; commit its offsets, or take it back to retry on the
        next flush (offsets stay uncommitted meanwhile). Part of it may have landed, so every
        sample in it is checked before the retry."""
        write, self._inflight = self._inflight, None
        if write is None:
            return
        try:
            write.done.result()
        except Exception:
            log.exception("storing a batch failed, will retry")
            metrics.INGEST_STORE_ERRORS.inc()
            write.batch.maybe_stored.update(write.batch.samples)
            write.batch.absorb(self._batch)
            self._batch = write.batch
            return
        self.stored_samples += len(write.batch.samples)
        self._commit(write.offsets)

    def _store(self, batch: _Batch) -> None:
        for key in self._already_stored(batch):
            del batch.samples[key]
            batch.maybe_stored.discard(key)
        samples = batch.samples.values()
        self._insert(SAMPLES, [line for line, _, binary in samples if binary is None])
        self._insert(SAMPLES, [binary for _, _, binary in samples if binary is not None],
                     row_binary=True)
        lines = [line for line, _, _ in samples]
        self._insert(SPANS, batch.spans)
        self._insert(USER_FEEDBACK, batch.feedback)
        deliveries = [self.bus.publish(TOPIC_SAMPLES, message) for message in pack(lines)]
        for delivery in deliveries:
            delivery.result(PUBLISH_TIMEOUT_S)

    def _already_stored(self, batch: _Batch) -> set[str]:
        if not batch.maybe_stored:
            return set()
        stamps = [batch.samples[k][1] for k in batch.maybe_stored]
        found = self.store.query(
            f"SELECT toString(sample_id) FROM {self.store.database}.{SAMPLES.name} "
            "WHERE sample_id IN {ids:Array(UUID)} AND ts BETWEEN {lo:DateTime64(6)} "
            "AND {hi:DateTime64(6)}",
            parameters={"ids": [uuid.UUID(k) for k in batch.maybe_stored],
                        "lo": EPOCH + timedelta(microseconds=min(stamps)),
                        "hi": EPOCH + timedelta(microseconds=max(stamps))})
        return {row[0] for row in found.rows}

    def _insert(self, table: Table[Any], data: list[bytes], row_binary: bool = False) -> None:
        """JSON lines of the table's model, or RowBinary rows in its columns' order (what the
        compiled path writes: native.py holds its column list to the model)."""
        if not data:
            return
        started = time.perf_counter()
        if row_binary:
            self.store.insert_row_binary(table.name, table.columns, data)
        else:
            self.store.insert_json(table.name, data)
        metrics.INGEST_INSERT_SECONDS.labels(table.name).observe(time.perf_counter() - started)
        metrics.INGEST_ROWS.labels(table.name).inc(len(data))

    def _offsets(self) -> dict[TopicPartition, int]:
        """Next offsets to read, never past an item still waiting in the join window."""
        low: dict[TopicPartition, int] = defaultdict(lambda: 1 << 62)
        for tp, offset in self.joiner.refs():
            low[tp] = min(low[tp], offset)
        return {tp: min(seen, low[tp]) if tp in low else seen for tp, seen in self._seen.items()}

    def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if offsets:
            try:
                self.consumer.commit(offsets)
            except BusError as exc:  # committed on the next flush; a replay is deduplicated
                log.warning("offset commit failed", extra={"error": str(exc)})
