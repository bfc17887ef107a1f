"""Hostile OTLP input against the real receivers: malformed bodies are 400 / INVALID_ARGUMENT
with the reason (never 5xx / INTERNAL), the body limit holds on the decompressed size with
bounded memory, over-large spans are cut to the limits with the cut recorded on the row, and
a seeded mutation fuzzer over the captured fixtures finds no 5xx and no INTERNAL.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import random
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from prometheus_client import REGISTRY

from helpers import RunningAgent, Service, chat_request, running_agent
from watchkeeper.agent.config import LimitsConfig, RedactionConfig
from watchkeeper.agent.sidecar.limits import TRUNCATED_KEY, Limiter, cut_utf8
from watchkeeper.agent.sidecar.redaction import Redactor
from watchkeeper.agent.sidecar.signals import LOGS, TRACES
from watchkeeper.collectors.normalise import NormaliseOptions, native

FIXTURES = Path(__file__).parent / "fixtures" / "otlp"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
GRPC_METHODS = {"traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export"}
SAMPLES_OF = "SELECT count() AS n FROM {db}.samples WHERE request_model = '%s'"


@pytest.fixture(scope="class")
def shared_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    """One agent with the defaults for the tests of a class (chdb opens one store per process
    at a time: the other tests' agents start after the class is done)."""
    with running_agent(tmp_path_factory.mktemp("hostile") / "wk") as running:
        yield running


def _reason(response: httpx.Response) -> str:
    """The google.rpc.Status message of an error answer, in the request's encoding."""
    if response.headers["Content-Type"].startswith(JSON):
        return str(json_format.Parse(response.text, Status()).message)
    return str(Status.FromString(response.content).message)


def _still_storing(agent: RunningAgent, tag: str) -> None:
    """A good span over each transport after the hostile ones, and both are stored."""
    with httpx.Client() as client:
        response = client.post(f"{agent.http_endpoint}/v1/traces", content=chat_request(1, tag),
                               headers={"Content-Type": PROTOBUF})
    assert response.status_code == 200
    with grpc.insecure_channel(agent.grpc_endpoint) as channel:
        channel.unary_unary(GRPC_METHODS["traces"])(chat_request(1, tag), timeout=10)
    assert agent.wait_for(SAMPLES_OF % tag, 2) == 2


# -- the listed hostile bodies -------------------------------------------------------------
def _kvlist(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "x"}
    for _ in range(levels):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


def _json_span(**span: Any) -> bytes:
    base = {"traceId": "01" * 16, "spanId": "02" * 8, "name": "chat m"}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{**base, **span}]}]}]}
                      ).encode()


def _attribute(value: Any) -> bytes:
    return _json_span(attributes=[{"key": "k", "value": value}])


def _pb_nested(levels: int) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="chat m")
    value = span.attributes.add(key="k").value
    for _ in range(levels):
        value = value.kvlist_value.values.add(key="k").value
    value.string_value = "x"
    return bytes(request.SerializeToString())


def _pb_bad_utf8() -> bytes:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="NAME")
    return bytes(request.SerializeToString()).replace(b"NAME", b"\xff\xfe\xed\xa0")


FIXTURE_TRACES = (FIXTURES / "openllmetry-0.62-attributes" / "001-traces.binpb").read_bytes()
DEEP = 10_000
HOSTILE_JSON: dict[str, tuple[bytes, str]] = {
    "deep arrays": (b'{"resourceSpans":' + b"[" * DEEP + b"]" * DEEP + b"}", "nests deeper"),
    "deep objects": (b'{"resourceSpans":[{"resource":' + b'{"a":' * DEEP + b"1" + b"}" * DEEP
                     + b"}]}", "nests deeper"),
    "deep key-value lists": (_attribute(_kvlist(30)), "nests deeper than 100 levels"),
    "huge integer": (_attribute({"intValue": 9}).replace(b"9", b"9" * 5000),
                     "integer with 5000 digits"),
    "huge integer string": (_attribute({"intValue": "9" * 5000}), "intValue"),
    "huge negative integer": (_attribute({"intValue": 0}).replace(b"0}", b"-" + b"9" * 30 + b"}"),
                              "integer with 30 digits"),
    "lone surrogate in a value": (_json_span(name="\ud800"), "lone surrogate"),
    "lone surrogate in a key": (_json_span(**{"\udc00": 1}), "lone surrogate"),
    "lone surrogate in an enum": (_json_span(kind="\ud800"), "lone surrogate"),
    "encoded surrogate": (_json_span(name="SURR").replace(b"SURR", b"\xed\xa0\x80"),
                          "not valid UTF-8"),
    "bad UTF-8": (_json_span(name="BAD").replace(b"BAD", b"\xff\xfe"), "not valid UTF-8"),
    "UTF-16": ('{"resourceSpans": []}'.encode("utf-16"), "not valid UTF-8"),
    "NaN": (_attribute({"doubleValue": 0.5}).replace(b"0.5", b"NaN"), "NaN is not a JSON value"),
    "Infinity": (_attribute({"doubleValue": 0.5}).replace(b"0.5", b"-Infinity"),
                 "-Infinity is not a JSON value"),
    "huge float": (_attribute({"doubleValue": 0.5}).replace(b"0.5", b"1e999999"), "doubleValue"),
    "top-level list": (b"[1, 2]", "must be an object, not list"),
    "top-level string": (b'"resourceSpans"', "must be an object, not str"),
    "top-level null": (b"null", "must be an object, not NoneType"),
    "empty": (b"", "not valid JSON"),
    "resourceSpans an object": (b'{"resourceSpans": {"a": 1}}', "resourceSpans"),
    "resource a number": (b'{"resourceSpans": [{"resource": 5}]}', "resource"),
    "spans a string": (b'{"resourceSpans": [{"scopeSpans": [{"spans": "x"}]}]}', "spans"),
    "name a number": (_json_span(name=5), "name"),
    "kind a list": (_json_span(kind=[1]), "kind"),
    "time not a number": (_json_span(startTimeUnixNano="soon"), "startTimeUnixNano"),
    "time negative": (_json_span(startTimeUnixNano=-1), "startTimeUnixNano"),
    "int a fraction": (_attribute({"intValue": 1.5}), "intValue"),
    "bool a string": (_attribute({"boolValue": "yes"}), "boolValue"),
    "value a list": (_attribute([1, 2]), "value"),
    "traceId not hex": (_json_span(traceId="zz"), "traceId 'zz' is not hex"),
    "traceId a number": (_json_span(traceId=7), "traceId"),
    "truncated": (_json_span()[:-7], "not valid JSON"),
}
HOSTILE_PROTOBUF: dict[str, tuple[bytes, str]] = {
    "truncated fixture": (FIXTURE_TRACES[:-7], "not a valid ExportTraceServiceRequest"),
    "invalid wire type": (b"\xff\xff\xff", "not a valid ExportTraceServiceRequest"),
    "length past the end": (b"\x0a\xff\xff\xff\x0f\x00", "not a valid"),
    "varint overflow": (b"\x08" + b"\xff" * 11, "not a valid"),
    "bad UTF-8 in a string": (_pb_bad_utf8(), "not a valid"),
    "nested past 100 messages": (_pb_nested(40), "not a valid"),
}


# -- compressed bodies and the body limit -------------------------------------------------
def gzip_bomb(mib: int) -> bytes:
    """A valid gzip stream of `mib` MiB of zeros (about 1 KB per MiB), built from one
    compressed MiB repeated after full flushes rather than by compressing it all."""
    zeros = bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + first + block * (mib - 1)
            + deflate.flush() + struct.pack("<II", crc, (mib << 20) & 0xFFFFFFFF))


def _sized_request(size: int) -> bytes:
    """A valid trace request of exactly `size` bytes (new ids each time)."""
    request = ExportTraceServiceRequest.FromString(chat_request(1, "sized"))
    note = request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="note").value
    pad = size - request.ByteSize()
    for _ in range(8):  # the length prefixes around the note grow with it: a few steps
        note.string_value = "x" * pad
        pad -= request.ByteSize() - size
    data = bytes(request.SerializeToString())
    assert len(data) == size
    return data


def _deflate(data: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


LIMIT = 64 * 1024


def test_body_limit_is_on_the_decompressed_size(agent_factory: Callable[..., Any]) -> None:
    with agent_factory(**{"sidecar.max_body_bytes": LIMIT}) as agent:
        url = f"{agent.http_endpoint}/v1/traces"

        def post(body: bytes | Iterator[bytes], encoding: str = "identity") -> httpx.Response:
            return httpx.post(url, content=body, timeout=30, headers={
                "Content-Type": PROTOBUF, "Content-Encoding": encoding})

        at_limit, over = _sized_request(LIMIT), _sized_request(LIMIT + 1)
        for encoding, pack in (("identity", lambda b: b), ("gzip", gzip.compress),
                               ("deflate", lambda b: _deflate(b, zlib.MAX_WBITS)),
                               ("deflate", lambda b: _deflate(b, -zlib.MAX_WBITS))):
            assert post(pack(_sized_request(LIMIT)), encoding).status_code == 200
            response = post(pack(over), encoding)
            assert response.status_code == 413
            assert f"exceeds the limit of {LIMIT} bytes" in _reason(response)
        # without a Content-Length (chunked), and a bomb: 1 KB of gzip that inflates to 10 MiB
        response = post(iter([at_limit[:LIMIT // 2], at_limit[LIMIT // 2:], b"\x00"]))
        assert response.status_code == 413
        response = post(gzip_bomb(10), "gzip")
        assert response.status_code == 413
        assert "once decompressed (gzip)" in _reason(response)
        # several gzip members are one body; broken or unknown encodings are 400 with a reason
        half = len(at_limit) // 2
        members = gzip.compress(at_limit[:half]) + gzip.compress(at_limit[half:])
        assert post(members, "gzip").status_code == 200
        for body, encoding, reason in (
                (b"not gzip", "gzip", "not valid gzip"),
                (gzip.compress(at_limit)[:-12], "gzip", "stream is truncated"),
                (gzip.compress(at_limit) + b"junk", "gzip", "not valid gzip"),
                (_deflate(at_limit, zlib.MAX_WBITS) + b"junk", "deflate",
                 "data after the end of its deflate stream"),
                (at_limit, "br", "unsupported Content-Encoding 'br'")):
            response = post(body, encoding)
            assert response.status_code == 400
            assert reason in _reason(response)
        assert agent.wait_for(SAMPLES_OF % "sized", 5) == 5
        # gRPC: grpc core holds the same limit, compressed or not
        with grpc.insecure_channel(agent.grpc_endpoint) as channel:
            export = channel.unary_unary(GRPC_METHODS["traces"])
            assert export(_sized_request(LIMIT), timeout=10,
                          compression=grpc.Compression.Gzip) is not None
            for body in (over, bytes(10 << 20)):
                with pytest.raises(grpc.RpcError) as failure:
                    export(body, timeout=10, compression=grpc.Compression.Gzip)
                assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "larger than max" in (failure.value.details() or "")


def _memory_kb(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as status:
        return {line.split(":")[0]: int(line.split()[1]) for line in status
                if line.startswith(("VmHWM:", "VmRSS:"))}


BOMB_LIMIT_MIB = 8
SLACK_MIB = 16  # the inflater's piece, the JSON/protobuf buffers and allocator rounding


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_gzip_bomb_costs_no_more_memory_than_the_limit(tmp_path: Path) -> None:
    """`watchkeeper up` in its own process; its peak RSS (VmHWM, reset just before) may grow
    by the body limit plus a small constant while it refuses a 1 GiB gzip bomb (1 MB on the
    wire) over HTTP and a 64 MiB gzip-compressed message over gRPC."""
    up = Service("up", "--data-dir", str(tmp_path / "wk"), "--otlp-http-port", "0",
                 "--otlp-grpc-port", "0", "--api-port", "0",
                 env={"WATCHKEEPER_SIDECAR__MAX_BODY_BYTES": str(BOMB_LIMIT_MIB << 20)})
    try:
        bomb = gzip_bomb(1024)
        pid = up.proc.pid
        before = _memory_kb(pid)
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as clear:
                clear.write("5")  # VmHWM := VmRSS now
        except OSError:
            pass  # then VmHWM also holds the start-up peak: the bound below is stricter
        response = httpx.post(f"{up.otlp_http}/v1/traces", content=bomb, timeout=60,
                              headers={"Content-Type": PROTOBUF, "Content-Encoding": "gzip"})
        assert response.status_code == 413
        assert "once decompressed (gzip)" in Status.FromString(response.content).message
        with (grpc.insecure_channel(f"127.0.0.1:{up.ports['otlp_grpc']}") as channel,
              pytest.raises(grpc.RpcError) as failure):
            channel.unary_unary(GRPC_METHODS["traces"])(
                bytes(64 << 20), timeout=60, compression=grpc.Compression.Gzip)
        assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        grown_mib = (_memory_kb(pid)["VmHWM"] - before["VmRSS"]) / 1024
        print(f"peak RSS grew by {grown_mib:.1f} MiB (limit {BOMB_LIMIT_MIB} MiB)")
        assert grown_mib < BOMB_LIMIT_MIB + SLACK_MIB
        # alive, and still storing
        assert up.proc.poll() is None
        response = httpx.post(f"{up.otlp_http}/v1/traces", content=chat_request(1, "after-bomb"),
                              headers={"Content-Type": PROTOBUF}, timeout=10)
        assert response.status_code == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not up.query(
                "SELECT count() AS n FROM samples WHERE request_model = 'after-bomb'")[0]["n"]:
            time.sleep(0.2)
        assert up.query("SELECT count() AS n FROM samples "
                        "WHERE request_model = 'after-bomb'")[0]["n"] == 1
    finally:
        up.stop()
        up.log.unlink(missing_ok=True)


# -- limits ----------------------------------------------------------------------------------
def test_cut_utf8_keeps_whole_characters() -> None:
    for char in ("a", "é", "日", "😀"):  # 1, 2, 3 and 4 bytes
        text = "a" + char * 100
        for max_bytes in range(1, 60):
            cut = cut_utf8(text, max_bytes)
            assert cut is not None
            assert len(cut.encode()) <= max_bytes < len(cut.encode()) + len(char.encode())
            assert text.startswith(cut)
    assert cut_utf8("é" * 10, 20) is None and cut_utf8("x" * 20, 20) is None


def _limited_limits() -> dict[str, Any]:
    return {"sidecar.limits.attribute_value_bytes": 300}


ATTRIBUTES = 100_000
ARRAY = 2_000
SECRET = "sk-" + "A7" * 20


def _over_limits_request(tag: str) -> ExportTraceServiceRequest:
    """One GenAI span with 100,000 attributes, an over-long value (300 bytes allowed), an array
    of 2,000 items, 1,500 events and an API key where the 300-byte cut falls."""
    request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(
        chat_request(1, tag))
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="app.note").value.string_value = "a" + "é" * 400
    span.attributes.add(key="app.secret").value.string_value = "x" * 280 + " key " + SECRET
    span.attributes.add(key="app.list").value.array_value.values.extend(
        AnyValue(int_value=i) for i in range(ARRAY))
    for i in range(ATTRIBUTES - len(span.attributes)):
        span.attributes.add(key=f"k{i}").value.int_value = i
    for i in range(1_500):
        span.events.add(name=f"e{i}", time_unix_nano=span.start_time_unix_nano)
    return request


# attributes beyond 1,024, events beyond 1,024, array items beyond 1,024, and two values cut
DROPPED_ATTRIBUTES = ATTRIBUTES - 1024
EXPECTED_CUTS = {"span_attributes": DROPPED_ATTRIBUTES, "span_events": 1_500 - 1024,
                 "array_values": ARRAY - 1024, "attribute_value_bytes": 2}
EXPECTED_TRUNCATED = sum(EXPECTED_CUTS.values())


def _limited_total(limit: str) -> float:
    return REGISTRY.get_sample_value("wk_sidecar_limited_total",
                                     {"signal": "traces", "limit": limit}) or 0.0


def test_limiter_records_the_cut_on_the_span() -> None:
    """The OTLP dropped counts and the truncated attribute, in the order the pipeline runs:
    counts, redaction, then value lengths (the API key is redacted before the cut)."""
    request = _over_limits_request("unit")
    limiter = Limiter(LimitsConfig(attribute_value_bytes=300))
    cuts = limiter.counts(request, TRACES)
    Redactor(RedactionConfig()).traces(request)
    cuts += limiter.values(request, TRACES)
    assert dict(cuts) == EXPECTED_CUTS
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.dropped_attributes_count == DROPPED_ATTRIBUTES
    assert span.dropped_events_count == 1_500 - 1024 and len(span.events) == 1024
    attributes = {kv.key: kv.value for kv in span.attributes}
    assert attributes[TRUNCATED_KEY].int_value == EXPECTED_TRUNCATED
    assert attributes["app.note"].string_value == "a" + "é" * 149  # 299 bytes: é is 2
    secret = attributes["app.secret"].string_value
    assert len(secret.encode()) == 300 and "sk-" not in secret and "[REDACTED:api_k" in secret
    assert len(attributes["app.list"].array_value.values) == 1024
    # + watchkeeper.redactions, watchkeeper.redactions.api_key and the truncated count
    assert len(span.attributes) == 1024 + 3
    # logs: attributes of a record and its body
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    for i in range(2_000):
        record.attributes.add(key=f"k{i}").value.int_value = i
    record.body.string_value = "日" * 200
    assert dict(limiter.counts(logs, LOGS) + limiter.values(logs, LOGS)) == {
        "log_attributes": 2_000 - 1024, "attribute_value_bytes": 1}
    assert record.dropped_attributes_count == 2_000 - 1024
    assert record.body.string_value == "日" * 100
    assert record.attributes[-1].key == TRUNCATED_KEY
    assert record.attributes[-1].value.int_value == 2_000 - 1024 + 1
    # the compiled path takes the cut span on itself (not left to Python) and keeps the count
    if native.AVAILABLE:
        [decoded] = native.decode_traces([request.SerializeToString()], NormaliseOptions())
        assert decoded is not None and not decoded.deferred and len(decoded.samples) == 1
        row = json.loads(decoded.samples[0].line)
        assert row["attributes"][TRUNCATED_KEY] == str(EXPECTED_TRUNCATED)


@pytest.mark.parametrize("path", ["native", "python"])
def test_over_limit_span_is_stored_cut(agent_factory: Callable[..., Any], path: str) -> None:
    if path == "native" and not native.AVAILABLE:
        pytest.skip("watchkeeper-native is not installed (pip install ./native)")
    with agent_factory(**_limited_limits(),
                       **{"ingest.native": "on" if path == "native" else "off"}) as agent:
        before = {limit: _limited_total(limit) for limit in EXPECTED_CUTS}
        body = _over_limits_request(f"limits-{path}").SerializeToString()
        assert len(body) > 1_000_000
        response = httpx.post(f"{agent.http_endpoint}/v1/traces", content=body,
                              headers={"Content-Type": PROTOBUF}, timeout=30)
        assert response.status_code == 200
        assert {limit: _limited_total(limit) - before[limit]
                for limit in EXPECTED_CUTS} == EXPECTED_CUTS
        assert agent.wait_for(SAMPLES_OF % f"limits-{path}", 1) == 1
        [row] = agent.query(
            "SELECT attributes, length(attributes) AS n, redactions FROM {db}.samples "
            f"WHERE request_model = 'limits-{path}'")
    attributes = row["attributes"]
    assert attributes[TRUNCATED_KEY] == str(EXPECTED_TRUNCATED)
    assert attributes["app.note"] == "a" + "é" * 149
    assert "sk-A" not in attributes["app.secret"] and row["redactions"] == 1
    assert "k99990" not in attributes and row["n"] <= 1024


# -- the fuzzer ------------------------------------------------------------------------------
SEED = int(os.environ.get("WATCHKEEPER_FUZZ_SEED", "20240611"))
BODIES_PER_TRANSPORT = int(os.environ.get("WATCHKEEPER_FUZZ_BODIES", "1500"))
INTERESTING = [b"\x00", b"\xff", b"\x80", b"\x7f", b"\x0a", b"\xff" * 10, b'"', b"{", b"[",
               b"\\", b"\\ud800", b"\xed\xa0\x80", b"9" * 30]


def _seeds() -> list[tuple[str, bytes]]:
    """The captured payloads, as (signal, protobuf body)."""
    seeds = []
    for path in sorted(FIXTURES.glob("*/*.binpb")):
        seeds.append(("logs" if "logs" in path.name else "traces", path.read_bytes()))
    return seeds


def _hex_ids(node: Any) -> Any:
    """protobuf's JSON (base64 bytes) to OTLP/JSON (hex ids)."""
    if isinstance(node, dict):
        return {k: base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId")
                and isinstance(v, str) else _hex_ids(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def _as_json(signal: str, body: bytes) -> Any:
    message = (ExportTraceServiceRequest if signal == "traces" else ExportLogsServiceRequest)
    return _hex_ids(json_format.MessageToDict(message.FromString(body)))


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            out += rng.choice(INTERESTING)
            continue
        at = rng.randrange(len(out))
        what = rng.randrange(6)
        if what == 0:  # flip bits
            out[at] ^= 1 << rng.randrange(8)
        elif what == 1:  # truncate
            del out[at:]
        elif what == 2:  # insert
            out[at:at] = rng.choice(INTERESTING) if rng.random() < 0.5 else rng.randbytes(
                rng.randint(1, 8))
        elif what == 3:  # delete a range
            del out[at:at + rng.randint(1, 16)]
        elif what == 4:  # duplicate a range
            out[at:at] = out[at:at + rng.randint(1, 64)]
        else:  # overwrite
            piece = rng.choice(INTERESTING)
            out[at:at + len(piece)] = piece
    return bytes(out)


# Placeholders for JSON tokens json.dumps cannot write; swapped in on the text.
RAW_TOKENS = {"@@HUGE@@": "9" * 5000, "@@SURROGATE@@": '"\\udc00"', "@@NAN@@": "NaN",
              "@@DEEP@@": "[" * 5000 + "]" * 5000, "@@MINUS@@": "-" + "9" * 40}


def _json_replacement(rng: random.Random) -> Any:
    return rng.choice([
        None, True, 0, -1, 2**63, 1.5, 1e308, "", "x" * rng.randint(1, 5000), "zz", [], {},
        [1, "a", None], {"stringValue": "x"}, {"kvlistValue": {"values": 5}},
        *RAW_TOKENS, _kvlist(rng.randint(20, 40)),
    ])


def _nodes(tree: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _nodes(value, (*path, i))


def _mutate_json(rng: random.Random, tree: Any) -> bytes:
    tree = json.loads(json.dumps(tree))
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _nodes(tree) if p]
        *parent_path, last = rng.choice(paths)
        parent = tree
        for step in parent_path:
            parent = parent[step]
        what = rng.randrange(4)
        if what == 0:  # replace the value (type swaps, huge numbers, surrogates, nesting)
            parent[last] = _json_replacement(rng)
        elif what == 1 and isinstance(parent, dict):  # rename the key
            parent[rng.choice(["traceId", "\ud800", "kind", "intValue", "", "@type",
                               "resourceSpans"])] = parent.pop(last)
        elif what == 2:  # wrap it
            parent[last] = rng.choice([[parent[last]], {"a": parent[last]}])
        elif isinstance(parent, list):  # repeat or drop a list item
            if rng.random() < 0.5:
                parent.append(parent[last])
            else:
                del parent[last]
    text = json.dumps(tree, ensure_ascii=rng.random() < 0.5)
    for token, raw in RAW_TOKENS.items():
        text = text.replace(f'"{token}"', raw)
    data = text.encode(errors="surrogatepass")
    return _mutate_bytes(rng, data) if rng.random() < 0.3 else data


def _fuzz_bodies(rng: random.Random, kind: str) -> Iterator[tuple[str, bytes]]:
    seeds = _seeds()
    trees = {i: _as_json(signal, body) for i, (signal, body) in enumerate(seeds)}
    for _ in range(BODIES_PER_TRANSPORT):
        i = rng.randrange(len(seeds))
        signal, body = seeds[i]
        yield signal, (_mutate_json(rng, trees[i]) if kind == "json"
                       else _mutate_bytes(rng, body))


class TestOneAgent:
    """Hostile bodies, then the fuzzer, against one agent with the defaults."""

    @pytest.mark.parametrize("case", list(HOSTILE_JSON))
    def test_hostile_json_is_400_with_reason(self, shared_agent: RunningAgent,
                                             case: str) -> None:
        body, reason = HOSTILE_JSON[case]
        response = httpx.post(f"{shared_agent.http_endpoint}/v1/traces", content=body,
                              headers={"Content-Type": JSON}, timeout=10)
        assert response.status_code == 400, response.text[:300]
        assert reason in _reason(response)

    @pytest.mark.parametrize("case", list(HOSTILE_PROTOBUF))
    def test_hostile_protobuf_is_400_and_invalid_argument(self, shared_agent: RunningAgent,
                                                          case: str) -> None:
        body, reason = HOSTILE_PROTOBUF[case]
        for encoding, packed in (("identity", body), ("gzip", gzip.compress(body))):
            response = httpx.post(f"{shared_agent.http_endpoint}/v1/traces", content=packed,
                                  headers={"Content-Type": PROTOBUF, "Content-Encoding": encoding},
                                  timeout=10)
            assert response.status_code == 400
            assert reason in _reason(response)
        with (grpc.insecure_channel(shared_agent.grpc_endpoint) as channel,
              pytest.raises(grpc.RpcError) as failure):
            channel.unary_unary(GRPC_METHODS["traces"])(body, timeout=10)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason in (failure.value.details() or "")

    def test_the_agent_keeps_storing_after_hostile_bodies(self,
                                                          shared_agent: RunningAgent) -> None:
        with httpx.Client(timeout=10) as client:
            for body, _ in HOSTILE_JSON.values():
                client.post(f"{shared_agent.http_endpoint}/v1/logs", content=body,
                            headers={"Content-Type": JSON})
        _still_storing(shared_agent, "after-hostile")

    def test_mutation_fuzzer_finds_no_5xx(self, shared_agent: RunningAgent) -> None:
        rng = random.Random(SEED)
        outcomes: Counter[str] = Counter()
        started = time.monotonic()
        with httpx.Client(timeout=30) as client:
            for kind, media in (("protobuf", PROTOBUF), ("json", JSON)):
                for signal, body in _fuzz_bodies(rng, kind):
                    encoding = "gzip" if rng.random() < 0.1 else "identity"
                    response = client.post(
                        f"{shared_agent.http_endpoint}/v1/{signal}",
                        content=gzip.compress(body, 1) if encoding == "gzip" else body,
                        headers={"Content-Type": media, "Content-Encoding": encoding})
                    assert response.status_code in (200, 400), (
                        f"{response.status_code} for {kind} body {body[:200]!r}: {response.text}")
                    if response.status_code == 400:
                        assert _reason(response)
                    outcomes[f"http {kind} {response.status_code}"] += 1
        with grpc.insecure_channel(shared_agent.grpc_endpoint) as channel:
            exports = {signal: channel.unary_unary(method)
                       for signal, method in GRPC_METHODS.items()}
            for signal, body in _fuzz_bodies(rng, "protobuf"):
                try:
                    exports[signal](body, timeout=30)
                    outcomes["grpc OK"] += 1
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (
                        f"{exc.code()} for body {body[:200]!r}: {exc.details()}")
                    assert exc.details()
                    outcomes["grpc INVALID_ARGUMENT"] += 1
        print(f"fuzz seed {SEED}: {sum(outcomes.values())} bodies in "
              f"{time.monotonic() - started:.1f}s: {dict(sorted(outcomes.items()))}")
        assert sum(outcomes.values()) == 3 * BODIES_PER_TRANSPORT
        # both answers occur on every transport: the mutations reach the decoder and past it
        for transport in ("http protobuf", "http json"):
            assert outcomes[f"{transport} 200"] and outcomes[f"{transport} 400"]
        assert outcomes["grpc OK"] and outcomes["grpc INVALID_ARGUMENT"]
        _still_storing(shared_agent, "after-fuzz")




def test_a_slow_to_redact_export_does_not_hold_up_the_others(tmp_path: Path) -> None:
    """A value that costs redaction seconds (a MiB of digits and spaces, each run a phone
    candidate, with a letter beyond ASCII, so the Python detectors take it) is worked on off
    the event loop: a small export sent after it is answered first, and both are stored."""
    heavy = ExportTraceServiceRequest.FromString(chat_request(1, "heavy"))
    span = heavy.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="tool.output").value.string_value = "1 " * 500_000 + "é"
    done: dict[str, float] = {}

    def send(tag: str, body: bytes) -> None:
        response = httpx.post(f"{agent.http_endpoint}/v1/traces", content=body, timeout=120,
                              headers={"Content-Type": PROTOBUF})
        assert response.status_code == 200, response.text
        done[tag] = time.monotonic()

    with running_agent(tmp_path / "wk") as agent:
        slow = threading.Thread(target=send, args=("heavy", heavy.SerializeToString()))
        slow.start()
        time.sleep(0.5)  # the heavy export is being redacted
        send("light", chat_request(1, "light"))
        slow.join(120)
        assert done["light"] < done["heavy"], "the small export waited for the large one"
        assert agent.wait_for(SAMPLES_OF % "heavy", 1) == 1
        assert agent.wait_for(SAMPLES_OF % "light", 1) == 1
