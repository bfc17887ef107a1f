"""Head sampling by trace id: consistent across sidecars, errors always kept."""

from __future__ import annotations

import os

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from watchkeeper.agent.config import SamplingConfig
from watchkeeper.agent.sidecar.sampling import Sampler


def _request(n: int, errors: int = 0) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for i in range(n):
        span = spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name=f"s{i}")
        if i < errors:
            span.status.code = Status.STATUS_CODE_ERROR
    return request


def test_ratio_is_honoured_and_consistent() -> None:
    request = _request(4000)
    ids = [s.trace_id for s in request.resource_spans[0].scope_spans[0].spans]
    a, b = Sampler(SamplingConfig(ratio=0.25)), Sampler(SamplingConfig(ratio=0.25))
    dropped = a.traces(request)
    kept = {s.trace_id for s in request.resource_spans[0].scope_spans[0].spans}
    assert 850 < len(kept) < 1150 and dropped == 4000 - len(kept)
    assert kept == {t for t in ids if b.sampled(t)}  # another sidecar decides the same


def test_errors_kept_and_their_logs_follow() -> None:
    sampler = Sampler(SamplingConfig(ratio=0.0))
    request = _request(50, errors=5)
    assert sampler.traces(request) == 45
    kept = [s.trace_id for s in request.resource_spans[0].scope_spans[0].spans]
    assert len(kept) == 5
    logs = ExportLogsServiceRequest()
    records = logs.resource_logs.add().scope_logs.add().log_records
    records.add(trace_id=kept[0])
    records.add(trace_id=os.urandom(16))
    records.add()  # no trace id: cannot be decided, kept
    assert sampler.logs(logs) == 1
    assert len(logs.resource_logs[0].scope_logs[0].log_records) == 2


def test_keep_errors_off() -> None:
    request = _request(10, errors=10)
    assert Sampler(SamplingConfig(ratio=0.0, keep_errors=False)).traces(request) == 10
