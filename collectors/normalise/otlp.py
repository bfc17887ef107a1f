"""Plain-Python views of OTLP protobuf: the one place that knows the wire classes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUS = ("unset", "ok", "error")


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def attributes(kvs: Sequence[KeyValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:  # the hot loop of ingest: strings and ints without the general dispatch
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "string_value":
            out[kv.key] = value.string_value
        elif kind == "int_value":
            out[kv.key] = value.int_value
        else:
            out[kv.key] = any_value(value)
    return out


@lru_cache(maxsize=1024)
def _resource_from(serialized: bytes) -> Mapping[str, Any]:
    return MappingProxyType(attributes(Resource.FromString(serialized).attributes))


def resource_attributes(resource: Resource) -> Mapping[str, Any]:
    """A process sends the same resource with every export: decoded once per distinct value
    (serialising it is ten times cheaper than decoding its attributes), shared read-only."""
    return _resource_from(resource.SerializeToString())


@dataclass(slots=True)
class SpanView:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    status_message: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    resource: Mapping[str, Any]
    scope: str


@dataclass(slots=True)
class LogView:
    trace_id: str
    span_id: str
    event_name: str
    time_ns: int
    attributes: dict[str, Any]
    body: Any
    resource: Mapping[str, Any]
    scope: str

    @property
    def instance(self) -> tuple[str, str]:
        """Which process sent it: the only join key left when a log lacks span ids."""
        return (str(self.resource.get("service.name", "")),
                str(self.resource.get("service.instance.id", "")))


def spans(request: ExportTraceServiceRequest) -> Iterator[SpanView]:
    for rs in request.resource_spans:
        resource = resource_attributes(rs.resource)
        for ss in rs.scope_spans:
            scope = ss.scope.name
            for span in ss.spans:
                yield SpanView(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    name=span.name,
                    kind=SPAN_KINDS[span.kind] if span.kind < len(SPAN_KINDS) else "",
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    status=STATUS[span.status.code] if span.status.code < len(STATUS) else "",
                    status_message=span.status.message,
                    attributes=attributes(span.attributes),
                    events=[(e.name, attributes(e.attributes)) for e in span.events],
                    resource=resource,
                    scope=scope,
                )


def logs(request: ExportLogsServiceRequest) -> Iterator[LogView]:
    for rl in request.resource_logs:
        resource = resource_attributes(rl.resource)
        for sl in rl.scope_logs:
            scope = sl.scope.name
            for record in sl.log_records:
                attrs = attributes(record.attributes)
                # Before OTLP had event_name, events carried it as the event.name attribute.
                name = record.event_name or str(attrs.pop("event.name", ""))
                yield LogView(
                    trace_id=record.trace_id.hex(),
                    span_id=record.span_id.hex(),
                    event_name=name,
                    time_ns=record.time_unix_nano or record.observed_time_unix_nano,
                    attributes=attrs,
                    body=any_value(record.body),
                    resource=resource,
                    scope=scope,
                )
