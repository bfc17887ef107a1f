"""Head sampling by trace id, the same decision in every sidecar (like OpenTelemetry's
TraceIdRatioBased: the low 8 bytes of the trace id against ratio * 2^64), with errors kept.
"""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from watchkeeper.agent.config import SamplingConfig
from watchkeeper.agent.sidecar.signals import LOGS, TRACES, items, keep_only

ERROR = Status.STATUS_CODE_ERROR
ERRORED_MEMORY = 10_000


class Sampler:
    def __init__(self, config: SamplingConfig) -> None:
        self.ratio = config.ratio
        self.keep_errors = config.keep_errors
        self._bound = round(config.ratio * (1 << 64))
        self._errored: dict[bytes, None] = {}  # insertion-ordered set of recent error traces

    @property
    def keeps_all(self) -> bool:
        return self.ratio >= 1.0

    def sampled(self, trace_id: bytes) -> bool:
        if self.keeps_all or not trace_id:
            return True  # a record without a trace id cannot be decided consistently: keep it
        return int.from_bytes(trace_id[-8:], "big") < self._bound

    def traces(self, request: ExportTraceServiceRequest) -> int:
        """Drop spans of unsampled traces in place (a trace with an error span is kept whole);
        returns how many were dropped."""
        if self.keeps_all:
            return 0
        errored = set()
        if self.keep_errors:
            errored = {span.trace_id for span in items(request, TRACES)
                       if span.status.code == ERROR}
        dropped = keep_only(request, TRACES,
                            lambda s: s.trace_id in errored or self.sampled(s.trace_id))
        self._errored.update(dict.fromkeys(errored))
        while len(self._errored) > ERRORED_MEMORY:
            self._errored.pop(next(iter(self._errored)))
        return dropped

    def logs(self, request: ExportLogsServiceRequest) -> int:
        """Log records follow their trace's decision, including the error exception for traces
        whose failed span was already seen (content logs sent before their span ended follow
        the ratio alone)."""
        if self.keeps_all:
            return 0
        return keep_only(request, LOGS,
                         lambda r: r.trace_id in self._errored or self.sampled(r.trace_id))
