"""The compiled span-to-row path (the `watchkeeper-native` package, built from native/).

It maps the spans whose shape it takes on (latest GenAI content on the span, plain non-LLM
spans) to the very JSON lines the Python normaliser writes, plus RowBinary rows for the insert,
without holding the GIL, and names the others (other conventions' content, message events,
feedback) for the Python normaliser.

What it knows of the normaliser it is handed from here, once (`rules()`, compiled into `RULES`):
the alias tables, the compiled shape's keys, and the markers every other shape in the registry
declares; a span carrying any marker is left to Python. native/ holds no copy of them.
tests/test_native.py holds the two paths to the same rows. Ingest uses it when it is installed
(`ingest.native`); without it everything takes the Python path.
"""

from __future__ import annotations

import importlib
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from watchkeeper.collectors.evaluation_event import EVENT_NAME as EVALUATION_EVENT
from watchkeeper.collectors.normalise import normaliser as n
from watchkeeper.collectors.normalise import otlp
from watchkeeper.collectors.normalise.normaliser import NormaliseOptions
from watchkeeper.collectors.normalise.sample import SAMPLE_NAMESPACE, Sample
from watchkeeper.collectors.normalise.shapes import Shape, genai_latest, registry

log = logging.getLogger(__name__)

_compiled: ModuleType | None
try:
    _compiled = importlib.import_module("watchkeeper_native")
except ImportError:  # not built here: the Python path serves alone
    _compiled = None

# The columns of PreparedSample.row_binary, in order: the Sample model's fields (the samples
# table's row model, agent/store/tables.py); and the fields of each sample decode_traces
# returns. A build that writes other lists is not used: its rows would land in the wrong
# columns, or its samples not unpack.
SAMPLE_FIELDS = ("trace_id", "span_id", "sample_id", "ts_us", "line", "row_binary", "index",
                 "has_content")
if _compiled is not None and (
        tuple(_compiled.SAMPLE_COLUMNS) != tuple(Sample.model_fields)
        or tuple(getattr(_compiled, "SAMPLE_FIELDS", ())) != SAMPLE_FIELDS):
    log.warning("watchkeeper-native writes other sample columns or fields than this version "
                "reads; rebuild it (pip install ./native). Ingest takes the Python path "
                "meanwhile.", extra={"compiled": list(_compiled.SAMPLE_COLUMNS)})
    _compiled = None


def rules(shapes: Sequence[Shape] | None = None) -> dict[str, Any]:
    """All the compiled path knows of the normaliser, from the normaliser's own tables and the
    shape registry (`shapes`, by default `registry()`). native/ rejects a rule it does not
    know, so it cannot silently ignore one.

    The one content it takes on is genai_latest's keys on the span; the markers of every shape,
    bar those keys (genai_latest's details event included), make it leave a span to Python.
    """
    shapes = registry() if shapes is None else shapes
    keys: list[str] = []
    prefixes: list[str] = []
    events: list[str] = []
    for shape in shapes:
        markers = getattr(shape, "MARKERS", None)
        if markers is None:  # its spans could not be told apart from the compiled path's
            raise TypeError(f"the shape {shape.NAME} declares no MARKERS")
        taken = genai_latest.KEYS if shape is genai_latest else ()
        keys += [k for k in markers.keys if k not in taken and k not in keys]
        prefixes += [p for p in markers.prefixes if p not in prefixes]
        events += [e for e in markers.events if e not in events]
    keys += [k for k in n.FALLBACK_KEYS if k not in keys]
    events.append(EVALUATION_EVENT)  # an evaluation on a span: ingest reads it in Python
    input_key, output_key, system_key = genai_latest.KEYS
    return {
        "aliases": {field: list(aliases) for field, aliases in n.ALIASES.items()},
        "resource_aliases": {field: list(aliases) for field, aliases in n.RESOURCE_ALIASES.items()},
        "metadata_keys": sorted(n.METADATA_KEYS),  # kept out of a sample's attribute map
        "redactions_key": n.REDACTIONS_KEY,
        "default_operation": n.DEFAULT_OPERATION,
        "llm_operations": sorted(n.LLM_OPERATIONS),
        "genai_markers": list(n.GENAI_MARKERS),
        "feedback_span": n.FEEDBACK_SPAN,
        "feedback_span_id_key": n.FEEDBACK_SPAN_ID_KEY,
        "exception_event": n.EXCEPTION_EVENT,
        "exception_type_key": n.EXCEPTION_TYPE_KEY,
        "max_attribute_chars": n.MAX_ATTRIBUTE_CHARS,
        "span_kinds": list(otlp.SPAN_KINDS),
        "sample_namespace": SAMPLE_NAMESPACE.bytes,
        "shape": {"name": genai_latest.NAME, "input": input_key, "output": output_key,
                  "system": system_key},
        "defer": {"keys": keys, "prefixes": prefixes, "events": events},
    }


def compile_rules(table: dict[str, Any]) -> Any:
    """The rules in the compiled form `decode_traces` takes (ValueError/KeyError/TypeError for
    rules the build does not know)."""
    if _compiled is None:
        raise RuntimeError("the watchkeeper-native package is not installed")
    return _compiled.Rules(table)


RULES: Any = None
if _compiled is not None:
    _table = rules()  # an error here is the normaliser's (a shape without MARKERS): it is raised
    try:
        RULES = compile_rules(_table)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a build of another version
        log.warning("watchkeeper-native cannot take this version's normaliser rules (%s); "
                    "rebuild it (pip install ./native). Ingest takes the Python path meanwhile.",
                    exc)
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
    has_content: bool  # content on the span: the join window need not wait for log records

    def view(self) -> otlp.SpanView:
        request = ExportTraceServiceRequest.FromString(self.message)
        return next(itertools.islice(otlp.spans(request), self.index, None))


@dataclass(slots=True)
class Decoded:
    samples: list[PreparedSample]
    span_rows: list[bytes]
    deferred: frozenset[int]  # span positions left to the Python normaliser


def decode_traces(messages: list[bytes], options: NormaliseOptions,
                  compiled_rules: Any = None) -> list[Decoded | None]:
    """wk.spans messages, decoded together on every core; None for a message that does not
    decode (the Python path then reports why). `compiled_rules` (from `compile_rules`)
    replaces the normaliser's own, `RULES`: for tests."""
    if _compiled is None:
        raise RuntimeError("the watchkeeper-native package is not installed")
    results = _compiled.decode_traces(messages, options.hash_user_ids, options.user_id_salt,
                                      RULES if compiled_rules is None else compiled_rules)
    return [None if result is None else _decoded(message, *result)
            for message, result in zip(messages, results, strict=True)]


def _decoded(message: bytes, samples: list[tuple[str, str, str, int, bytes, bytes, int, bool]],
             span_rows: list[bytes], deferred: list[int]) -> Decoded:
    prepared = [PreparedSample(trace_id, span_id, sample_id, ts_us, line, binary, message, index,
                               content)
                for trace_id, span_id, sample_id, ts_us, line, binary, index, content in samples]
    return Decoded(prepared, span_rows, frozenset(deferred))
