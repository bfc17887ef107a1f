"""Decode: wk.spans messages into what ingest joins and stores, by either path.

Why a part of its own: a message can go through the compiled path (`native/`, decision 0005)
or the Python normaliser, and nothing after this module should know which. Both give each
GenAI span as a `PreparedRow`, rows for the `spans` and `user_feedback` tables, and log records
for the join window. Both paths write a span's `samples` row up front, with whether the span
carries its content (then the join window does not wait for log records); a row that log
records join is written again by Python in `render`, from its message, with its logs. A message
that does not decode is set aside on wk.deadletter with the reason, and the rest of the chunk
flows.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from watchkeeper.agent import metrics
from watchkeeper.agent.bus import SIGNAL_HEADER, Bus, Record, TopicPartition, dead_letter
from watchkeeper.agent.config import EvaluationReceiveConfig
from watchkeeper.agent.evaluations import events
from watchkeeper.agent.store import rows
from watchkeeper.agent.store.tables import FlagRow, ScoreRow
from watchkeeper.collectors.normalise import (
    NormaliseOptions,
    Sample,
    is_feedback,
    is_llm_call,
    native,
    otlp,
    to_feedback,
    to_sample,
    to_span_record,
)
from watchkeeper.collectors.normalise.sample import sample_id_for

log = logging.getLogger(__name__)

Ref = tuple[TopicPartition, int]  # where an item came from on the bus: (topic, partition), offset
PUBLISH_TIMEOUT_S = 30.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class SampleRow:
    """One `samples` row, ready to insert and publish."""

    sample_id: str
    ts_us: int
    line: bytes  # the JSON line: the wk.samples entry, and the row for a JSON insert
    row_binary: bytes | None  # in RowBinary (SAMPLES.columns), where the compiled path wrote it


@dataclass(slots=True)
class PreparedRow:
    """A GenAI span on its way to its `samples` row, the same whichever path decoded it: its
    join key, where it came from (its message and its position there), its row as written
    without log records, and whether it carries its content (input, output or system
    instructions found on the span itself)."""

    trace_id: str
    span_id: str
    message: bytes
    index: int
    row: SampleRow | None
    has_content: bool
    _span: otlp.SpanView | None = field(default=None, repr=False)

    @classmethod
    def from_view(cls, span: otlp.SpanView, message: bytes = b"", index: int = 0,
                  row: SampleRow | None = None, has_content: bool = False) -> PreparedRow:
        return cls(span.trace_id, span.span_id, message, index, row, has_content, span)

    def view(self) -> otlp.SpanView:
        """The span as the Python normaliser reads it (decoded from its message once)."""
        if self._span is None:
            request = ExportTraceServiceRequest.FromString(self.message)
            self._span = next(itertools.islice(otlp.spans(request), self.index, None))
        return self._span


@dataclass(slots=True)
class Decoded:
    """What a chunk of wk.spans messages held, in bus order within each list."""

    spans: list[tuple[PreparedRow, Ref]] = field(default_factory=list)  # for the join window
    logs: list[tuple[otlp.LogView, Ref]] = field(default_factory=list)  # for the join window
    span_rows: list[bytes] = field(default_factory=list)  # `spans` rows (JSON lines)
    feedback_rows: list[bytes] = field(default_factory=list)  # `user_feedback` rows
    # gen_ai.evaluation.result records received: `scores` rows, and the flags they raise
    scores: list[ScoreRow] = field(default_factory=list)
    flags: list[FlagRow] = field(default_factory=list)
    # ... and those naming only the call's response id: joined by the writer (writer.py)
    by_response: list[events.Received] = field(default_factory=list)


class Decoder:
    def __init__(self, bus: Bus, options: NormaliseOptions, use_native: bool,
                 evaluations: EvaluationReceiveConfig | None = None) -> None:
        self.bus = bus  # for dead letters
        self.options = options
        self.evaluations = evaluations or EvaluationReceiveConfig()
        self.native = use_native and native.AVAILABLE
        self._messages = {signal: metrics.INGEST_MESSAGES.labels(signal)
                          for signal in ("traces", "logs")}

    def decode(self, records: list[Record]) -> Decoded:
        out = Decoded()
        logs = 0
        for record, compiled in zip(records, self._decode_natively(records), strict=True):
            logs += self._take(record, compiled, out)
        self._messages["logs"].inc(logs)  # counted per chunk: a counter costs µs a call
        self._messages["traces"].inc(len(records) - logs)
        return out

    def render(self, row: PreparedRow, logs: list[otlp.LogView]) -> SampleRow:
        """The `samples` row of a span leaving the join window: the one written as it was
        decoded when no log records joined it, otherwise the Python normaliser's, with them."""
        if row.row is not None and not logs:
            return row.row
        return _sample_row(to_sample(row.view(), logs, self.options))

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

    def _take(self, record: Record, compiled: native.Decoded | None, out: Decoded) -> bool:
        """Returns whether the message held log records (otherwise spans)."""
        ref = ((record.topic, record.partition), record.offset)
        is_logs = record.header(SIGNAL_HEADER) == b"logs"
        try:
            if is_logs:
                logs_request = ExportLogsServiceRequest.FromString(record.value)
                for item in otlp.logs(logs_request):
                    if self.evaluations.enabled and events.is_evaluation(item):
                        self._take_evaluation(events.from_log(item, self.evaluations), out)
                    else:
                        out.logs.append((item, ref))
                return True
            deferred = None  # the positions of spans the compiled path left to Python; all
            if compiled is not None:
                out.spans += [(PreparedRow(p.trace_id, p.span_id, p.message, p.index,
                                           SampleRow(p.sample_id, p.ts_us, p.line, p.row_binary),
                                           p.has_content), ref) for p in compiled.samples]
                out.span_rows += compiled.span_rows
                if not compiled.deferred:
                    return False
                deferred = compiled.deferred
            trace_request = ExportTraceServiceRequest.FromString(record.value)
            for i, span in enumerate(otlp.spans(trace_request)):
                if deferred is None or i in deferred:
                    self._take_span(span, record.value, i, ref, out)
        except Exception as exc:
            self._dead_letter(record, exc)
        return is_logs

    def _take_span(self, span: otlp.SpanView, message: bytes, index: int, ref: Ref,
                   out: Decoded) -> None:
        if is_feedback(span):
            out.feedback_rows.append(rows.json_row(to_feedback(span, self.options)))
            return
        call = is_llm_call(span)
        if call:
            sample = to_sample(span, [], self.options)  # a shape found content: sample.source
            out.spans.append((PreparedRow.from_view(span, message, index, _sample_row(sample),
                                                    bool(sample.source)), ref))
        else:
            out.span_rows.append(rows.json_row(to_span_record(span)))
        if self.evaluations.enabled and span.events:  # the compiled path leaves these here
            for event in events.from_span_events(span, call, self.evaluations):
                self._take_evaluation(event, out)

    def _take_evaluation(self, event: events.Received | None, out: Decoded) -> None:
        """An evaluation that names its span becomes rows now; one that names only the
        call's response id waits for the writer; one that names neither is counted."""
        if event is not None and not event.names_span:
            out.by_response.append(event)
            return
        metrics.INGEST_EVALUATIONS.labels("stored" if event else "unjoined").inc()
        if event is not None:
            score, flag = event.rows(sample_id_for(event.trace_id, event.span_id))
            out.scores.append(score)
            if flag is not None:
                out.flags.append(flag)

    def _dead_letter(self, record: Record, exc: Exception) -> None:
        metrics.INGEST_DEAD_LETTERS.inc()
        log.warning("message set aside to the dead-letter topic",
                    extra={"partition": record.partition, "offset": record.offset,
                           "error": f"{type(exc).__name__}: {exc}"})
        dead_letter(self.bus, record, exc).result(PUBLISH_TIMEOUT_S)


def _sample_row(sample: Sample) -> SampleRow:
    return SampleRow(str(sample.sample_id), (sample.ts - EPOCH) // timedelta(microseconds=1),
                     rows.json_row(sample), None)
