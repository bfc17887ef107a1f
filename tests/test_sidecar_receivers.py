"""The sidecar's OTLP listeners, driven by opentelemetry-sdk's real exporters and raw bodies."""

from __future__ import annotations

import gzip
import json
import time

import grpc
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from helpers import RunningAgent, post

MESSAGES_IN = [{"role": "user", "parts": [{"type": "text", "content": "Hello there"}]}]
MESSAGES_OUT = [{"role": "assistant", "parts": [{"type": "text", "content": "Hi!"}],
                 "finish_reason": "stop"}]


def emit_chat(exporter: object, service: str, n: int = 1) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[arg-type]
    tracer = provider.get_tracer("test")
    for _ in range(n):
        with tracer.start_as_current_span("request"), \
                tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.provider.name", "openai")
            span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            span.set_attribute("gen_ai.input.messages", json.dumps(MESSAGES_IN))
            span.set_attribute("gen_ai.output.messages", json.dumps(MESSAGES_OUT))
            span.set_attribute("gen_ai.usage.input_tokens", 3)
    provider.shutdown()


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_real_exporters_land_one_row_per_call(agent: RunningAgent, transport: str) -> None:
    exporter = (HttpSpans(endpoint=f"{agent.http_endpoint}/v1/traces") if transport == "http"
                else GrpcSpans(endpoint=agent.grpc_endpoint, insecure=True))
    emit_chat(exporter, f"svc-{transport}", n=5)
    assert agent.wait_for("SELECT count() AS n FROM {db}.samples", 5) == 5
    rows = agent.query("SELECT service, prompt_text, completion_text, input_tokens, source "
                       "FROM {db}.samples")
    assert {r["service"] for r in rows} == {f"svc-{transport}"}
    assert all(r["prompt_text"] == "Hello there" and r["completion_text"] == "Hi!"
               for r in rows)
    assert all(r["input_tokens"] == 3 and r["source"] == "genai_latest" for r in rows)
    # the parent "request" spans are kept for context in `spans`
    assert agent.wait_for("SELECT count() AS n FROM {db}.spans", 5) == 5


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_log_records_join_their_span(agent: RunningAgent, transport: str) -> None:
    """Content sent as OTLP log records (event mode) lands on the span's sample."""
    exporter = (HttpLogs(endpoint=f"{agent.http_endpoint}/v1/logs") if transport == "http"
                else GrpcLogs(endpoint=agent.grpc_endpoint, insecure=True))
    resource = Resource.create({"service.name": "events"})
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    traces = TracerProvider(resource=resource)
    span_exporter = (HttpSpans(endpoint=f"{agent.http_endpoint}/v1/traces")
                     if transport == "http" else GrpcSpans(endpoint=agent.grpc_endpoint,
                                                           insecure=True))
    traces.add_span_processor(SimpleSpanProcessor(span_exporter))
    with traces.get_tracer("t").start_as_current_span("chat m") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.system", "openai")
        logger = logs.get_logger("t")
        for name, body in (("gen_ai.user.message", {"content": "2+2?"}),
                           ("gen_ai.choice", {"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": "4"}})):
            # emitted inside the span: the record carries its trace and span ids
            logger.emit(body=body, event_name=name, attributes={"gen_ai.system": "openai"})
    traces.shutdown()
    logs.shutdown()
    assert agent.wait_for("SELECT count() AS n FROM {db}.samples", 1) == 1
    row = agent.query("SELECT prompt_text, completion_text, finish_reasons, source "
                      "FROM {db}.samples")[0]
    assert (row["prompt_text"], row["completion_text"]) == ("2+2?", "4")
    assert row["finish_reasons"] == ["stop"] and row["source"] == "genai_events"


def _request(trace_id: bytes = b"\x01" * 16, span_id: bytes = b"\x02" * 8) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = trace_id, span_id, "chat x"
    span.attributes.add(key="gen_ai.request.model").value.string_value = "x"
    return request.SerializeToString()


def test_json_and_gzip_bodies(agent: RunningAgent) -> None:
    start = time.time_ns()
    tree = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "json-svc"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "chat m", "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 1_000_000_000),
            "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "m"}},
                           {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "9"}}],
        }]}]}]}
    response = post(f"{agent.http_endpoint}/v1/traces", json.dumps(tree).encode(),
                    "application/json")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    response = post(f"{agent.http_endpoint}/v1/traces", gzip.compress(_request()),
                    **{"Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert agent.wait_for("SELECT count() AS n FROM {db}.samples", 2) == 2
    row = agent.query("SELECT trace_id, duration_ms, output_tokens FROM {db}.samples "
                      "WHERE service = 'json-svc'")[0]
    assert row["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert row["duration_ms"] == pytest.approx(1000.0)
    assert row["output_tokens"] == 9


@pytest.mark.parametrize(("body", "content_type", "headers", "reason"), [
    (b"\xff\xff\xff", "application/x-protobuf", {}, "not a valid ExportTraceServiceRequest"),
    (b"{not json", "application/json", {}, "not valid JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
     "application/json", {}, "traceId 'zz' is not hex"),
    (b"abc", "text/plain", {}, "unsupported Content-Type"),
    (b"not gzip", "application/x-protobuf", {"Content-Encoding": "gzip"}, "not valid gzip"),
])
def test_malformed_bodies_are_400_with_reason(agent: RunningAgent, body: bytes,
                                              content_type: str, headers: dict[str, str],
                                              reason: str) -> None:
    response = post(f"{agent.http_endpoint}/v1/traces", body, content_type, **headers)
    assert response.status_code == 400
    if content_type == "application/json":
        message = response.json()["message"]
    else:
        message = Status.FromString(response.content).message
    assert reason in message
    # and the receiver keeps serving
    assert post(f"{agent.http_endpoint}/v1/traces", _request()).status_code == 200


def test_partial_success_rejects_only_bad_spans(agent: RunningAgent) -> None:
    request = ExportTraceServiceRequest.FromString(_request())
    bad = request.resource_spans[0].scope_spans[0].spans.add()
    bad.trace_id, bad.span_id, bad.name = b"\x01" * 3, b"\x02" * 8, "broken ids"
    response = post(f"{agent.http_endpoint}/v1/traces", request.SerializeToString())
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1
    assert "invalid trace or span ids" in partial.error_message
    assert agent.wait_for("SELECT count() AS n FROM {db}.samples", 1) == 1


def test_grpc_malformed_is_invalid_argument(agent: RunningAgent) -> None:
    with grpc.insecure_channel(agent.grpc_endpoint) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as failure:
            export(b"\xff\xff\xff", timeout=5)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid ExportTraceServiceRequest" in (failure.value.details() or "")
        assert ExportTraceServiceResponse.FromString(export(_request(), timeout=5))


def test_token_required_on_both_transports(agent_factory: object) -> None:
    with agent_factory(**{"sidecar.token": "s3cret"}) as agent:  # type: ignore[operator]
        url = f"{agent.http_endpoint}/v1/traces"
        assert post(url, _request()).status_code == 401
        assert post(url, _request(), Authorization="Bearer wrong").status_code == 401
        assert post(url, _request(), Authorization="Bearer s3cret").status_code == 200
        with grpc.insecure_channel(agent.grpc_endpoint) as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            with pytest.raises(grpc.RpcError) as failure:
                export(_request(), timeout=5)
            assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert export(_request(), timeout=5,
                          metadata=(("authorization", "Bearer s3cret"),)) is not None
        exporter = HttpSpans(endpoint=url, headers={"Authorization": "Bearer s3cret"})
        emit_chat(exporter, "authed")
        assert agent.wait_for(
            "SELECT count() AS n FROM {db}.samples WHERE service = 'authed'", 1) == 1


def test_json_response_error_is_status_json(agent: RunningAgent) -> None:
    response = post(f"{agent.http_endpoint}/v1/logs", b"[1,2", "application/json")
    assert response.status_code == 400
    status = json_format.Parse(response.text, Status())
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
