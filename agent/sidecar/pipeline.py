"""What the sidecar does to every accepted OTLP request, whatever the transport: validate ids,
head-sample, redact, split by trace id and forward to the bus topic wk.spans.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from watchkeeper.agent import metrics
from watchkeeper.agent.bus import SIGNAL_HEADER, TOPIC_SPANS, Bus, BusError
from watchkeeper.agent.config import SidecarConfig
from watchkeeper.agent.sidecar.redaction import Redactor
from watchkeeper.agent.sidecar.sampling import Sampler

M = TypeVar("M", bound=Message)
TRACES = (SIGNAL_HEADER, b"traces")
LOGS = (SIGNAL_HEADER, b"logs")
REQUEST_TYPES: dict[str, type[Message]] = {"traces": ExportTraceServiceRequest,
                                           "logs": ExportLogsServiceRequest}


class Unavailable(Exception):
    """The bus cannot take data now: answer with a retryable status so exporters retry."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """OTLP partial success: how many items were rejected, and why."""

    rejected: int = 0
    message: str = ""


class Pipeline:
    def __init__(self, config: SidecarConfig, bus: Bus) -> None:
        self.bus = bus
        self.redactor = Redactor(config.redaction)
        self.sampler = Sampler(config.sampling)

    def export(self, signal: str, request: Message, transport: str) -> Message:
        """Handle one OTLP export request; returns the OTLP response (with partial success)."""
        if isinstance(request, ExportTraceServiceRequest):
            outcome = self.traces(request, transport)
            return ExportTraceServiceResponse(partial_success=ExportTracePartialSuccess(
                rejected_spans=outcome.rejected, error_message=outcome.message))
        if isinstance(request, ExportLogsServiceRequest):
            outcome = self.logs(request, transport)
            return ExportLogsServiceResponse(partial_success=ExportLogsPartialSuccess(
                rejected_log_records=outcome.rejected, error_message=outcome.message))
        raise TypeError(f"not an OTLP export request: {type(request).__name__}")

    def traces(self, request: ExportTraceServiceRequest, transport: str) -> Outcome:
        received = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        metrics.RECEIVED.labels("traces", transport).inc(received)
        rejected = _filter(request, SPANS, _valid_span)
        metrics.REJECTED.labels("traces").inc(rejected)
        metrics.SAMPLED_OUT.labels("traces").inc(self.sampler.traces(request))
        metrics.REDACTIONS.labels("traces").inc(self.redactor.traces(request))
        for trace_id, part in _split(request, SPANS).items():
            self._publish(part.SerializeToString(), trace_id, TRACES)
        message = f"{rejected} spans had invalid trace or span ids" if rejected else ""
        return Outcome(rejected, message)

    def logs(self, request: ExportLogsServiceRequest, transport: str) -> Outcome:
        received = sum(len(sl.log_records) for rl in request.resource_logs
                       for sl in rl.scope_logs)
        metrics.RECEIVED.labels("logs", transport).inc(received)
        rejected = _filter(request, LOG_RECORDS, _valid_log)
        metrics.REJECTED.labels("logs").inc(rejected)
        metrics.SAMPLED_OUT.labels("logs").inc(self.sampler.logs(request))
        metrics.REDACTIONS.labels("logs").inc(self.redactor.logs(request))
        for trace_id, part in _split(request, LOG_RECORDS).items():
            self._publish(part.SerializeToString(), trace_id, LOGS)
        message = f"{rejected} log records had invalid trace or span ids" if rejected else ""
        return Outcome(rejected, message)

    def _publish(self, value: bytes, key: bytes, header: tuple[str, bytes]) -> None:
        try:
            self.bus.publish(TOPIC_SPANS, value, key=key.hex().encode() or None,
                             headers=(header,))
        except BusError as exc:
            metrics.PUBLISH_ERRORS.labels(TOPIC_SPANS).inc()
            raise Unavailable(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Layout:
    """Field names of one OTLP signal: traces and logs nest the same way under other names."""

    resources: str
    scopes: str
    items: str


SPANS = Layout("resource_spans", "scope_spans", "spans")
LOG_RECORDS = Layout("resource_logs", "scope_logs", "log_records")


def _filter(request: Message, layout: Layout, keep: Callable[[Any], bool]) -> int:
    dropped = 0
    for resource in getattr(request, layout.resources):
        for scope in getattr(resource, layout.scopes):
            items = getattr(scope, layout.items)
            good = [item for item in items if keep(item)]
            if len(good) != len(items):
                dropped += len(items) - len(good)
                del items[:]
                items.extend(good)
    return dropped


def _valid_span(span: Any) -> bool:
    return (len(span.trace_id) == 16 and len(span.span_id) == 8
            and any(span.trace_id) and any(span.span_id))


def _valid_log(record: Any) -> bool:
    """Log records may lack ids (not every log belongs to a span), but not carry broken ones."""
    return len(record.trace_id) in (0, 16) and len(record.span_id) in (0, 8)


def _split(request: M, layout: Layout) -> dict[bytes, M]:
    """One bus message per trace, so that a trace's spans and logs share a partition."""
    resources = getattr(request, layout.resources)
    ids = {item.trace_id for r in resources for s in getattr(r, layout.scopes)
           for item in getattr(s, layout.items)}
    if len(ids) <= 1:
        return {ids.pop(): request} if ids else {}
    out: dict[bytes, M] = {}
    for resource in resources:
        resource_parts: dict[bytes, Any] = {}
        for scope in getattr(resource, layout.scopes):
            scope_parts: dict[bytes, Any] = {}
            for item in getattr(scope, layout.items):
                target = scope_parts.get(item.trace_id)
                if target is None:
                    parent = resource_parts.get(item.trace_id)
                    if parent is None:
                        part = out.setdefault(item.trace_id, type(request)())
                        parent = resource_parts[item.trace_id] = getattr(
                            part, layout.resources).add(resource=resource.resource,
                                                        schema_url=resource.schema_url)
                    target = scope_parts[item.trace_id] = getattr(parent, layout.scopes).add(
                        scope=scope.scope, schema_url=scope.schema_url)
                getattr(target, layout.items).append(item)
    return out
