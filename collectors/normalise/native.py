"""The compiled span-to-row path (the `watchkeeper-native` package, built from native/).

It maps the spans whose shape it takes on (latest GenAI content on the span, plain non-LLM
spans) to the very JSON lines the Python normaliser writes, plus RowBinary rows for the insert,
without holding the GIL, and names the others (other conventions' content, message events,
feedback) for the Python normaliser.
tests/test_native.py holds the two paths to the same rows. Ingest uses it when it is installed
(`ingest.native`); without it everything takes the Python path.
"""

from __future__ import annotations

import importlib
import itertools
import logging
from dataclasses import dataclass
from types import ModuleType

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from watchkeeper.collectors.normalise import otlp
from watchkeeper.collectors.normalise.normaliser import NormaliseOptions
from watchkeeper.collectors.normalise.sample import Sample

log = logging.getLogger(__name__)

_compiled: ModuleType | None
try:
    _compiled = importlib.import_module("watchkeeper_native")
except ImportError:  # not built here: the Python path serves alone
    _compiled = None

# The columns of PreparedSample.row_binary, in order: the Sample model's fields (the samples
# table's row model, agent/store/tables.py). A build that writes another list is not used: its
# rows would land in the wrong columns.
if _compiled is not None and tuple(_compiled.SAMPLE_COLUMNS) != tuple(Sample.model_fields):
    log.warning("watchkeeper-native writes other sample columns than this version's model; "
                "rebuild it (pip install ./native). Ingest takes the Python path meanwhile.",
                extra={"compiled": list(_compiled.SAMPLE_COLUMNS)})
    _compiled = None

AVAILABLE = _compiled is not None
ROW_BINARY_COLUMNS: tuple[str, ...] = tuple(Sample.model_fields) if _compiled else ()


@dataclass(slots=True)
class PreparedSample:
    """An LLM span already normalised to its row; `view()` decodes it again for the Python
    normaliser when log records join it (the row then has to include what they carry)."""

    trace_id: str
    span_id: str
    sample_id: str
    ts_us: int
    line: bytes  # the JSON line: the wk.samples message (and the row, for a JSON insert)
    row_binary: bytes  # the same row in ClickHouse's RowBinary: the faster insert
    message: bytes  # the wk.spans message the span came in
    index: int  # its position among the message's spans

    def view(self) -> otlp.SpanView:
        request = ExportTraceServiceRequest.FromString(self.message)
        return next(itertools.islice(otlp.spans(request), self.index, None))


@dataclass(slots=True)
class Decoded:
    samples: list[PreparedSample]
    span_rows: list[bytes]
    deferred: frozenset[int]  # span positions left to the Python normaliser


def decode_traces(messages: list[bytes], options: NormaliseOptions) -> list[Decoded | None]:
    """wk.spans messages, decoded together on every core; None for a message that does not
    decode (the Python path then reports why)."""
    if _compiled is None:
        raise RuntimeError("the watchkeeper-native package is not installed")
    results = _compiled.decode_traces(messages, options.hash_user_ids, options.user_id_salt)
    return [None if result is None else _decoded(message, *result)
            for message, result in zip(messages, results, strict=True)]


def _decoded(message: bytes, samples: list[tuple[str, str, str, int, bytes, bytes, int]],
             span_rows: list[bytes], deferred: list[int]) -> Decoded:
    prepared = [PreparedSample(trace_id, span_id, sample_id, ts_us, line, binary, message, index)
                for trace_id, span_id, sample_id, ts_us, line, binary, index in samples]
    return Decoded(prepared, span_rows, frozenset(deferred))
