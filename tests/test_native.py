"""The compiled span-to-row path (native/) against the Python normaliser: for every span it
takes on, the same row, field for field; every other span is named for the Python path.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from watchkeeper.agent import metrics
from watchkeeper.agent.bus import SIGNAL_HEADER, TOPIC_SPANS
from watchkeeper.agent.bus.embedded import EmbeddedBus
from watchkeeper.agent.config import IngestConfig, StoreConfig
from watchkeeper.agent.ingest.service import IngestService
from watchkeeper.agent.store import rows
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import migrate
from watchkeeper.agent.store.tables import SAMPLES
from watchkeeper.collectors.normalise import (
    NormaliseOptions,
    is_llm_call,
    native,
    otlp,
    shapes,
    to_sample,
    to_span_record,
)
from watchkeeper.collectors.normalise import normaliser as normaliser_module
from watchkeeper.collectors.normalise.otlp import LogView, SpanView
from watchkeeper.collectors.normalise.sample import SAMPLE_NAMESPACE, Message, Part
from watchkeeper.collectors.normalise.shapes import Content, Markers, genai_latest

# `make test` sets WATCHKEEPER_REQUIRE_NATIVE=1 where cargo is on the machine: there a compiled
# path that did not build, or that ingest would not use, fails these tests instead of skipping.
if os.environ.get("WATCHKEEPER_REQUIRE_NATIVE") == "1" and not native.AVAILABLE:
    raise RuntimeError("cargo is on this machine, but the compiled path (native/) is not "
                       "usable: see the warning from collectors/normalise/native.py")
pytestmark = pytest.mark.skipif(
    not native.AVAILABLE, reason="watchkeeper-native is not installed (pip install ./native)")

FIXTURES = Path(__file__).parent / "fixtures" / "otlp"
OPTIONS = NormaliseOptions(hash_user_ids=True, user_id_salt="pepper")


def _python_rows(request: ExportTraceServiceRequest,
                 deferred: frozenset[int]) -> tuple[dict[int, Any], list[Any]]:
    """What the Python normaliser makes of the spans the compiled path took on."""
    samples, spans = {}, []
    for i, span in enumerate(otlp.spans(request)):
        if i in deferred:
            continue
        if is_llm_call(span):
            samples[i] = json.loads(rows.json_row(to_sample(span, [], OPTIONS)))
        else:
            spans.append(json.loads(rows.json_row(to_span_record(span))))
    return samples, spans


def _compare(message: bytes, compiled_rules: Any = None) -> native.Decoded:
    [decoded] = native.decode_traces([message], OPTIONS, compiled_rules)
    assert decoded is not None
    request = ExportTraceServiceRequest.FromString(message)
    samples, spans = _python_rows(request, decoded.deferred)
    got = {p.index: json.loads(p.line) for p in decoded.samples}
    assert got == samples
    assert [json.loads(line) for line in decoded.span_rows] == spans
    for prepared in decoded.samples:  # what ingest keeps beside the row
        assert (prepared.sample_id, prepared.trace_id, prepared.span_id) == (
            got[prepared.index]["sample_id"], got[prepared.index]["trace_id"],
            got[prepared.index]["span_id"])
        ts = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=prepared.ts_us)
        assert ts == datetime.fromisoformat(got[prepared.index]["ts"])
        assert prepared.view().span_id == prepared.span_id
        assert prepared.has_content == bool(got[prepared.index]["source"])
    return decoded


def _trace_bodies() -> list[tuple[str, bytes]]:
    return [(case.name, body.read_bytes()) for case in sorted(FIXTURES.iterdir())
            for body in sorted(case.glob("*-traces.binpb"))]


@pytest.mark.parametrize("case", sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()))
def test_captured_instrumentations_give_the_same_rows(case: str) -> None:
    taken = deferred = 0
    for name, body in _trace_bodies():
        if name == case:
            decoded = _compare(body)
            taken += len(decoded.samples) + len(decoded.span_rows)
            deferred += len(decoded.deferred)
    assert taken + deferred > 0
    if case in ("contrib-openai-v2-span-only", "openllmetry-0.62-attributes"):
        assert deferred == 0  # the latest conventions are the compiled path's own


# -- generated spans: the value forms and edge cases both paths must agree on ------------------
TEXTS = ["plain", "", "quote \" and backslash \\", "tab\tnew\nline\r", "ctrl \x01\x1f \x7f",
         "é ü 日本語 😀", "<class 'openai.RateLimitError'>", "openai.APIError",
         "timed out after 3s"]


def _value(rng: random.Random, depth: int = 0) -> AnyValue:
    kind = rng.choice(["s", "s", "i", "b", "d", "bytes", "arr", "kv", "none"][:9 - 2 * depth])
    value = AnyValue()
    if kind == "s":
        value.string_value = rng.choice(TEXTS) if rng.random() < 0.8 else "x" * rng.choice(
            [4095, 4096, 4097]) + "é" * rng.randint(0, 3)
    elif kind == "i":
        value.int_value = rng.choice([0, 1, -7, 2**62, 256])
    elif kind == "b":
        value.bool_value = rng.random() < 0.5
    elif kind == "d":
        value.double_value = rng.choice([0.2, 1.0, 1e16, 1e-5, 123456.789, -0.0, 2.5e-300,
                                         math.inf, -math.inf, math.nan, 1 / 3])
    elif kind == "bytes":
        value.bytes_value = rng.randbytes(rng.randint(0, 4))
    elif kind == "arr":
        value.array_value.values.extend(_value(rng, depth + 1) for _ in range(rng.randint(0, 3)))
    elif kind == "kv":
        value.kvlist_value.values.extend(KeyValue(key=rng.choice(TEXTS), value=_value(
            rng, depth + 1)) for _ in range(rng.randint(0, 3)))
    return value


def _messages(rng: random.Random, role: str) -> str:
    forms: list[Any] = [
        [{"role": role, "parts": [{"type": "text", "content": rng.choice(TEXTS)}]}],
        [{"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
         {"role": role, "parts": [{"type": "text", "content": rng.choice(TEXTS)},
                                  {"type": "text", "content": None}, {"content": "untyped"}],
          "finish_reason": rng.choice(["stop", None, "length"]), "extra": 1}],
        [{"role": role, "parts": [{"type": "tool_call", "id": "c1", "name": "f",
                                   "arguments": {"a": 1}}]}],  # tool calls: the Python path
        [{"role": role, "content": "OpenAI style"}],  # loose: the Python path
        [], [{"role": "", "parts": []}], "not json [", {"role": role},
    ]
    form = forms[0] if rng.random() < 0.6 else forms[1] if rng.random() < 0.5 else rng.choice(forms)
    return form if isinstance(form, str) else json.dumps(form, ensure_ascii=rng.random() < 0.5)


def _span(rng: random.Random, i: int) -> Span:
    start = rng.choice([1_760_000_000_123_456_789, 1_700_000_000_000_000_500,
                        1_760_000_000_999_999_999, rng.randrange(10**18, 2 * 10**18)])
    start = 0 if rng.random() < 0.03 else start
    span = Span(trace_id=rng.randbytes(16), span_id=rng.randbytes(8),
                parent_span_id=rng.choice([b"", rng.randbytes(8)]),
                name=rng.choice(["chat gpt", "retrieve", "gen_ai.feedback"]),
                kind=rng.randint(0, 6), start_time_unix_nano=start,
                end_time_unix_nano=start + rng.choice([0, 1, 1_500_000, -5 if start else 0]),
                status=Status(code=rng.choice([0, 1, 2]), message=rng.choice(TEXTS)))
    attrs: list[tuple[str, AnyValue]] = []
    if rng.random() < 0.8:
        attrs.append(("gen_ai.operation.name", AnyValue(string_value=rng.choice(
            ["chat", "chat", "embeddings", "text_completion", ""]))))
    if rng.random() < 0.6:
        attrs.append(("gen_ai.request.model", AnyValue(string_value="gpt-4o-mini")))
    for key in ("gen_ai.input.messages", "gen_ai.output.messages"):
        if rng.random() < 0.8:
            attrs.append((key, AnyValue(string_value=_messages(
                rng, "user" if "input" in key else "assistant"))))
    if rng.random() < 0.5:
        attrs.append(("gen_ai.system_instructions", AnyValue(string_value=rng.choice(
            ['[{"type": "text", "content": "sys"}, {"type": "text", "content": ""}]',
             "plain instructions", '[{"type": "text"}]', '{"a": 1}']))))
    for key in ("gen_ai.provider.name", "gen_ai.system", "gen_ai.response.model", "error.type",
                "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "user.id",
                "gen_ai.conversation.id", "gen_ai.response.finish_reasons",
                "watchkeeper.redactions", "server.port"):
        if rng.random() < 0.4:  # mostly the form conventions give them, sometimes any form
            usual = AnyValue(int_value=rng.randint(0, 99)) if "tokens" in key or "port" in key \
                or "redactions" in key else AnyValue(string_value=rng.choice(TEXTS))
            if "finish" in key:
                usual.array_value.values.add(string_value=rng.choice(TEXTS))
            attrs.append((key, usual if rng.random() < 0.85 else _value(rng)))
    attrs += [("custom", _value(rng)) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.1:
        attrs.append(("gen_ai.prompt.0.content", AnyValue(string_value="indexed")))
    if rng.random() < 0.05:
        attrs.append(("watchkeeper.feedback.span_id", AnyValue(string_value="ab")))
    rng.shuffle(attrs)
    span.attributes.extend(KeyValue(key=k, value=v) for k, v in attrs)
    if rng.random() < 0.1:
        span.events.add(name="exception").attributes.add(key="exception.type").value.string_value \
            = "ValueError"
    return span


def test_generated_spans_give_the_same_rows() -> None:
    rng = random.Random(20261129)
    taken = samples = deferred = 0
    for n in range(300):
        request = ExportTraceServiceRequest()
        rs = request.resource_spans.add()
        rs.resource.attributes.extend([
            KeyValue(key="service.name", value=AnyValue(string_value=f"svc-{n % 3}")),
            KeyValue(key="deployment.environment", value=_value(rng, 2)),
        ])
        for _ in range(rng.randint(1, 2)):
            ss = rs.scope_spans.add()
            ss.scope.name = rng.choice(["", "scope.é"])
            ss.spans.extend(_span(rng, i) for i in range(rng.randint(1, 4)))
        decoded = _compare(request.SerializeToString())
        taken += len(decoded.samples) + len(decoded.span_rows)
        samples += len(decoded.samples)
        deferred += len(decoded.deferred)
    # the comparison means something only if the compiled path took on a good share of the
    # spans (about half: the generator gives many of them forms only Python writes, or markers)
    assert taken > 0.45 * (taken + deferred) and samples > 300, (taken, samples, deferred)


def test_row_binary_columns_are_the_sample_fields_in_order() -> None:
    assert SAMPLES.columns == native.ROW_BINARY_COLUMNS


def test_an_undecodable_message_is_left_to_the_python_path() -> None:
    assert native.decode_traces([b"\x0a\xff\xff", b""], OPTIONS)[0] is None


def test_ingest_stores_the_same_rows_with_and_without_it(tmp_path: Path) -> None:
    """The captures (span-only, log-record and indexed forms) through ingest both ways: log
    records joining a span the compiled path prepared send it back to the Python normaliser."""
    results = []
    counted = {signal: metrics.INGEST_MESSAGES.labels(signal) for signal in ("traces", "logs")}
    for mode in ("off", "on"):
        before = {signal: counter._value.get() for signal, counter in counted.items()}
        published = {"traces": 0, "logs": 0}
        store = Store(f"chdb://{tmp_path / 'ch'}", StoreConfig(database=f"wk_{mode}"))
        migrate(store)
        bus = EmbeddedBus()
        service = IngestService(bus, store, IngestConfig(native=mode, join_window_s=0.2))
        assert service.native is (mode == "on")
        for case in sorted(FIXTURES.iterdir()):
            for body in sorted(case.glob("*.binpb")):
                signal = body.stem.split("-", 1)[1]
                if signal == "logs":
                    ExportLogsServiceRequest.FromString(body.read_bytes())  # well-formed
                bus.publish(TOPIC_SPANS, body.read_bytes(),
                            headers=((SIGNAL_HEADER, signal.encode()),))
                published[signal] += 1
        service.drain_bus()
        assert {signal: counter._value.get() - before[signal]
                for signal, counter in counted.items()} == published
        table = store.query(f"SELECT * EXCEPT ingested_at FROM {store.database}.samples "
                            "ORDER BY sample_id")
        results.append(table.rows)
        store.close()
    python_rows, native_rows = results
    assert len(python_rows) == 4 * len(list(FIXTURES.iterdir()))
    assert native_rows == python_rows


# -- the rules: what the compiled path knows of the normaliser comes from Python -----------------
def _request(*spans: Span) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "svc"
    rs.scope_spans.add().spans.extend(spans)
    return request.SerializeToString()


def _llm_span(n: int, **extra: str) -> Span:
    span = Span(trace_id=bytes([n]) * 16, span_id=bytes([n]) * 8, name="chat gpt-4o-mini",
                start_time_unix_nano=1_760_000_000_000_000_000,
                end_time_unix_nano=1_760_000_001_000_000_000)
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
             "gen_ai.input.messages": json.dumps(
                 [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]), **extra}
    span.attributes.extend(KeyValue(key=k, value=AnyValue(string_value=v))
                           for k, v in attrs.items())
    return span


def _acme_extract(span: SpanView, logs: Sequence[LogView]) -> Content | None:
    text = span.attributes.get("acme.llm.completion")
    if not text:
        return None
    return Content(output=[Message(role="assistant", parts=[Part(content=text)])],
                   consumed={"acme.llm.completion"})


# A made-up shape, registered for one test: its content sits under a prefix native/ never saw.
ACME = SimpleNamespace(NAME="acme", MARKERS=Markers(prefixes=("acme.llm.",)),
                       extract=_acme_extract)


def test_rules_are_the_normaliser_tables() -> None:
    table = native.rules()
    n = normaliser_module
    assert table["aliases"] == {field: list(keys) for field, keys in n.ALIASES.items()}
    assert table["resource_aliases"] == {f: list(k) for f, k in n.RESOURCE_ALIASES.items()}
    assert set(table["metadata_keys"]) == n.METADATA_KEYS
    assert set(table["llm_operations"]) == n.LLM_OPERATIONS
    assert tuple(table["genai_markers"]) == n.GENAI_MARKERS
    assert table["max_attribute_chars"] == n.MAX_ATTRIBUTE_CHARS
    assert tuple(table["span_kinds"]) == otlp.SPAN_KINDS
    assert table["sample_namespace"] == SAMPLE_NAMESPACE.bytes
    assert (table["shape"]["name"], table["shape"]["input"], table["shape"]["output"],
            table["shape"]["system"]) == (genai_latest.NAME, *genai_latest.KEYS)
    # every shape's markers, bar the compiled shape's own content keys, and nothing else
    registered = shapes.registry()
    assert set(table["defer"]["prefixes"]) == {p for s in registered for p in s.MARKERS.prefixes}
    # and evaluation events on a span, which ingest reads in Python (agent/evaluations)
    assert set(table["defer"]["events"]) == {e for s in registered for e in s.MARKERS.events} \
        | {"gen_ai.evaluation.result"}
    assert set(table["defer"]["keys"]) == ({k for s in registered for k in s.MARKERS.keys}
                                           - set(genai_latest.KEYS)) | set(n.FALLBACK_KEYS)


def test_the_compiled_row_follows_a_changed_alias_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new alias in the normaliser's table: both paths read it, with no change to native/."""
    n = normaliser_module
    message = _request(_llm_span(1, **{"acme.vendor": "acme", "acme.model": "m-1"}))
    [before] = native.decode_traces([message], OPTIONS)
    assert json.loads(before.samples[0].line)["provider"] == "openai"
    monkeypatch.setitem(n.ALIASES, "provider", ("acme.vendor", *n.ALIASES["provider"]))
    monkeypatch.setitem(n.ALIASES, "request_model", ("acme.model",))
    monkeypatch.setattr(n, "METADATA_KEYS", n.METADATA_KEYS | {"acme.vendor", "acme.model"})
    decoded = _compare(message, native.compile_rules(native.rules()))
    row = json.loads(decoded.samples[0].line)
    assert (row["provider"], row["request_model"]) == ("acme", "m-1")
    assert "acme.vendor" not in row["attributes"]


def test_the_sample_id_namespace_is_the_normalisers() -> None:
    table = native.rules()
    table["sample_namespace"] = uuid.NAMESPACE_DNS.bytes
    [decoded] = native.decode_traces([_request(_llm_span(2))], OPTIONS,
                                     native.compile_rules(table))
    [prepared] = decoded.samples
    assert prepared.sample_id == str(uuid.uuid5(
        uuid.NAMESPACE_DNS, f"{prepared.trace_id}:{prepared.span_id}"))


def test_a_new_shape_reaches_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shape registered in Python only: its spans are left to the Python normaliser, which
    finds its content; before, native/ would have written the row without it."""
    plain = Span(trace_id=b"\x03" * 16, span_id=b"\x04" * 8, name="tool",
                 start_time_unix_nano=1_760_000_000_000_000_000)
    plain.attributes.add(key="acme.llm.step").value.string_value = "1"
    message = _request(_llm_span(3, **{"acme.llm.completion": "hello"}), plain)
    [old] = native.decode_traces([message], OPTIONS)
    assert old.deferred == frozenset()  # taken with today's registry: acme is unknown

    registered = [*shapes.registry(), ACME]
    monkeypatch.setattr(normaliser_module, "registry", lambda: registered)
    monkeypatch.setattr(native, "registry", lambda: registered)
    assert "acme.llm." in native.rules()["defer"]["prefixes"]
    decoded = _compare(message, native.compile_rules(native.rules()))
    assert decoded.deferred == frozenset({0, 1}) and not decoded.samples
    [view, _] = otlp.spans(ExportTraceServiceRequest.FromString(message))
    sample = to_sample(view, [], OPTIONS)
    assert (sample.source, sample.completion_text) == ("genai_latest+acme", "hello")
    assert json.loads(old.samples[0].line)["completion_text"] == ""  # what the override lost


@pytest.mark.parametrize("marker", ["keys", "prefixes", "events"])
def test_a_span_with_any_handed_over_marker_is_deferred(marker: str) -> None:
    span = _llm_span(5, **{"x.marker": "1"})
    span.events.add(name="x.event")
    message = _request(span)
    table = native.rules()
    [taken] = native.decode_traces([message], OPTIONS, native.compile_rules(table))
    assert len(taken.samples) == 1
    table["defer"][marker].append({"keys": "x.marker", "prefixes": "x.",
                                   "events": "x.event"}[marker])
    [decoded] = native.decode_traces([message], OPTIONS, native.compile_rules(table))
    assert decoded.deferred == frozenset({0})


def test_native_has_no_list_of_its_own() -> None:
    """With no markers handed over, the compiled path takes an indexed-attribute span (which
    the normaliser's registry leaves to Python): the deferral list is all Python's."""
    message = _request(_llm_span(6, **{"gen_ai.prompt.0.content": "hi"}))
    [deferred] = native.decode_traces([message], OPTIONS)
    assert deferred.deferred == frozenset({0})
    table = native.rules()
    table["defer"] = {"keys": [], "prefixes": [], "events": []}
    [decoded] = native.decode_traces([message], OPTIONS, native.compile_rules(table))
    assert decoded.deferred == frozenset() and len(decoded.samples) == 1


def test_rules_the_build_does_not_know_are_refused() -> None:
    table = native.rules()
    with pytest.raises(ValueError, match="not known"):
        native.compile_rules({**table, "defer": {**table["defer"], "names": ["x"]}})
    with pytest.raises(ValueError, match="not known"):
        native.compile_rules({**table, "aliases": {**table["aliases"], "temperature": ["t"]}})
    broken = copy.deepcopy(table)
    del broken["aliases"]["provider"]
    with pytest.raises(KeyError):
        native.compile_rules(broken)
    with pytest.raises(TypeError, match="MARKERS"):
        native.rules([*shapes.registry(), SimpleNamespace(NAME="unmarked")])  # type: ignore[list-item]


def test_the_allocator_commits_arenas_on_demand_unless_told_otherwise() -> None:
    """native/src/allocator.rs: mimalloc's arenas are committed on demand (freed pages leave
    the resident set), and MIMALLOC_ARENA_EAGER_COMMIT in the environment still wins."""
    probe = "import watchkeeper_native; print(watchkeeper_native.ARENA_EAGER_COMMIT)"
    env = {k: v for k, v in os.environ.items() if k != "MIMALLOC_ARENA_EAGER_COMMIT"}
    for given, expected in ((None, "0"), ("1", "1")):
        run_env = env if given is None else {**env, "MIMALLOC_ARENA_EAGER_COMMIT": given}
        done = subprocess.run([sys.executable, "-c", probe], env=run_env, capture_output=True,
                              text=True, check=True, timeout=60)
        assert done.stdout.strip() == expected
