"""What the sidecar does to every accepted OTLP request, whatever the transport: validate ids,
head-sample, redact, split by trace id and forward to the bus topic wk.spans; an export is
acknowledged only once the bus holds it or the disk spool does.
"""

from __future__ import annotations

import asyncio
import logging
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
from watchkeeper.agent.bus import SIGNAL_HEADER, TOPIC_SPANS, Bus, BusError, Delivery
from watchkeeper.agent.config import SidecarConfig
from watchkeeper.agent.sidecar.redaction import Redactor
from watchkeeper.agent.sidecar.sampling import Sampler
from watchkeeper.agent.sidecar.spool import Message as BusMessage
from watchkeeper.agent.sidecar.spool import Spool, SpoolFull

log = logging.getLogger(__name__)

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


class Forwarder:
    """Hands messages to the bus and waits for it to hold them; when it cannot (broker down,
    timeout), the messages go to the spool and are replayed in order when the bus returns."""

    def __init__(self, bus: Bus, spool: Spool | None, ack_timeout_s: float) -> None:
        self.bus = bus
        self.spool = spool
        self.ack_timeout_s = ack_timeout_s

    def _publish(self, messages: list[BusMessage]) -> list[Delivery]:
        return [self.bus.publish(m.topic, m.value, key=m.key, headers=m.headers)
                for m in messages]

    async def _deliver(self, messages: list[BusMessage], timeout_s: float) -> None:
        """Publish off the event loop (a producer may block on metadata), then wait for the bus
        to hold every message."""
        deliveries = await asyncio.to_thread(self._publish, messages)
        await asyncio.wait_for(asyncio.gather(*(asyncio.wrap_future(d) for d in deliveries)),
                               timeout_s)

    async def forward(self, messages: list[BusMessage]) -> None:
        if not messages:
            return
        if self.spool:  # keep order: while anything waits on disk, new data queues behind it
            self._to_spool(messages)
            return
        try:
            await self._deliver(messages, self.ack_timeout_s)
        except (BusError, TimeoutError) as exc:
            metrics.PUBLISH_ERRORS.labels(TOPIC_SPANS).inc()
            if self.spool is None:
                raise Unavailable(str(exc)) from exc
            log.warning("bus unavailable, spooling",
                        extra={"error": f"{type(exc).__name__}: {exc}"})
            self._to_spool(messages)

    def _to_spool(self, messages: list[BusMessage]) -> None:
        assert self.spool is not None
        try:
            self.spool.append(messages)
        except SpoolFull as exc:
            raise Unavailable(str(exc)) from exc
        finally:
            self._report_depth()

    def _report_depth(self) -> None:
        assert self.spool is not None
        records, size = self.spool.depth
        metrics.SPOOL_RECORDS.set(records)
        metrics.SPOOL_BYTES.set(size)

    async def replay(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        """Drain the spool, oldest segment first, whenever the bus answers again."""
        while not stop.is_set():
            healthy = bool(self.spool) and await asyncio.to_thread(self.bus.healthy)
            if healthy:
                await self._replay_one()
            else:
                await asyncio.sleep(interval_s)

    async def _replay_one(self) -> None:
        assert self.spool is not None
        oldest = self.spool.oldest()
        if oldest is None:
            return
        segment, messages = oldest
        try:
            await self._deliver(messages, self.ack_timeout_s * 3)
        except (BusError, TimeoutError) as exc:
            log.warning("spool replay failed, will retry",
                        extra={"error": f"{type(exc).__name__}: {exc}"})
            await asyncio.sleep(1.0)
            return
        self.spool.remove(segment, len(messages))
        self._report_depth()
        log.info("spool segment replayed", extra={"messages": len(messages),
                                                  "left": self.spool.depth[0]})


class Pipeline:
    def __init__(self, config: SidecarConfig, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        self.redactor = Redactor(config.redaction)
        self.sampler = Sampler(config.sampling)

    async def export(self, request: Message, transport: str) -> Message:
        """Handle one OTLP export request; returns the OTLP response (with partial success)."""
        if isinstance(request, ExportTraceServiceRequest):
            outcome, messages = self.traces(request, transport)
            await self.forwarder.forward(messages)
            return ExportTraceServiceResponse(partial_success=ExportTracePartialSuccess(
                rejected_spans=outcome.rejected, error_message=outcome.message))
        if isinstance(request, ExportLogsServiceRequest):
            outcome, messages = self.logs(request, transport)
            await self.forwarder.forward(messages)
            return ExportLogsServiceResponse(partial_success=ExportLogsPartialSuccess(
                rejected_log_records=outcome.rejected, error_message=outcome.message))
        raise TypeError(f"not an OTLP export request: {type(request).__name__}")

    def traces(self, request: ExportTraceServiceRequest,
               transport: str) -> tuple[Outcome, list[BusMessage]]:
        received = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        metrics.RECEIVED.labels("traces", transport).inc(received)
        rejected = _filter(request, SPANS, _valid_span)
        metrics.REJECTED.labels("traces").inc(rejected)
        metrics.SAMPLED_OUT.labels("traces").inc(self.sampler.traces(request))
        metrics.REDACTIONS.labels("traces").inc(self.redactor.traces(request))
        messages = [_message(part, trace_id, TRACES)
                    for trace_id, part in _split(request, SPANS).items()]
        message = f"{rejected} spans had invalid trace or span ids" if rejected else ""
        return Outcome(rejected, message), messages

    def logs(self, request: ExportLogsServiceRequest,
             transport: str) -> tuple[Outcome, list[BusMessage]]:
        received = sum(len(sl.log_records) for rl in request.resource_logs
                       for sl in rl.scope_logs)
        metrics.RECEIVED.labels("logs", transport).inc(received)
        rejected = _filter(request, LOG_RECORDS, _valid_log)
        metrics.REJECTED.labels("logs").inc(rejected)
        metrics.SAMPLED_OUT.labels("logs").inc(self.sampler.logs(request))
        metrics.REDACTIONS.labels("logs").inc(self.redactor.logs(request))
        messages = [_message(part, trace_id, LOGS)
                    for trace_id, part in _split(request, LOG_RECORDS).items()]
        message = f"{rejected} log records had invalid trace or span ids" if rejected else ""
        return Outcome(rejected, message), messages


def _message(part: Message, trace_id: bytes, header: tuple[str, bytes]) -> BusMessage:
    return BusMessage(TOPIC_SPANS, trace_id.hex().encode() or None, part.SerializeToString(),
                      (header,))


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
