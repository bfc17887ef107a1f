"""The two OTLP signals the sidecar takes, described as data. Traces and logs nest the same way
(request → resources → scopes → items) under other field names, and differ in what makes an
item's ids acceptable and how a partial success is answered; with one description per signal,
receiving, validation, sampling, redaction and the split by trace are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True, slots=True)
class Signal:
    """Where one signal keeps its items, and what the sidecar checks and answers for it."""

    name: str  # the URL path segment, the metric label and the bus header value
    service: str  # the OTLP/gRPC service
    request: type[Message]
    respond: Callable[[int, str], Message]  # (items rejected, why) → the export response
    resources: str
    scopes: str
    items: str
    noun: str  # what an item is called in a rejection message
    valid: Callable[[Any], bool]  # whether an item's trace and span ids are well formed


def _valid_span(span: Any) -> bool:
    return (len(span.trace_id) == 16 and len(span.span_id) == 8
            and any(span.trace_id) and any(span.span_id))


def _valid_log(record: Any) -> bool:
    """Log records may lack ids (not every log belongs to a span), but not carry broken ones."""
    return len(record.trace_id) in (0, 16) and len(record.span_id) in (0, 8)


TRACES = Signal(
    name="traces", service="opentelemetry.proto.collector.trace.v1.TraceService",
    request=ExportTraceServiceRequest,
    respond=lambda rejected, why: ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=rejected, error_message=why)),
    resources="resource_spans", scopes="scope_spans", items="spans", noun="spans",
    valid=_valid_span)
LOGS = Signal(
    name="logs", service="opentelemetry.proto.collector.logs.v1.LogsService",
    request=ExportLogsServiceRequest,
    respond=lambda rejected, why: ExportLogsServiceResponse(
        partial_success=ExportLogsPartialSuccess(rejected_log_records=rejected,
                                                 error_message=why)),
    resources="resource_logs", scopes="scope_logs", items="log_records", noun="log records",
    valid=_valid_log)
SIGNALS = (TRACES, LOGS)


def items(request: Message, signal: Signal) -> Iterator[Any]:
    """Every span or log record of the request, in order."""
    for resource in getattr(request, signal.resources):
        for scope in getattr(resource, signal.scopes):
            yield from getattr(scope, signal.items)


def count(request: Message, signal: Signal) -> int:
    return sum(len(getattr(scope, signal.items)) for resource in getattr(request, signal.resources)
               for scope in getattr(resource, signal.scopes))


def keep_only(request: Message, signal: Signal, keep: Callable[[Any], bool]) -> int:
    """Drop, in place, the items for which `keep` is false; returns how many were dropped."""
    dropped = 0
    for resource in getattr(request, signal.resources):
        for scope in getattr(resource, signal.scopes):
            scope_items = getattr(scope, signal.items)
            good = [item for item in scope_items if keep(item)]
            if len(good) != len(scope_items):
                dropped += len(scope_items) - len(good)
                del scope_items[:]
                scope_items.extend(good)
    return dropped
