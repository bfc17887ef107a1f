"""What the sidecar does to every accepted OTLP request, whatever the transport: validate ids,
head-sample, apply the limits (counts, then redact, then value lengths: see limits.py), split
by trace id and forward to the bus topic wk.spans; an export is acknowledged only once the bus
holds it or the disk spool does.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import Message

from watchkeeper.agent import metrics
from watchkeeper.agent.bus import SIGNAL_HEADER, TOPIC_SPANS, Bus, BusError
from watchkeeper.agent.bus import Message as BusMessage
from watchkeeper.agent.config import SidecarConfig
from watchkeeper.agent.sidecar.limits import Cuts, Limiter
from watchkeeper.agent.sidecar.redaction import Redactor
from watchkeeper.agent.sidecar.sampling import Sampler
from watchkeeper.agent.sidecar.signals import (
    LOGS,
    SIGNALS,
    TRACES,
    Signal,
    count,
    items,
    keep_only,
)
from watchkeeper.agent.sidecar.spool import Spool, SpoolFull

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)


# Requests over this are validated, redacted and split on a worker thread: redaction of a large
# hostile value takes seconds (1 MiB of digits and spaces, ~6 s of phone candidates), and the
# event loop goes on answering other exports meanwhile.
ACCEPT_INLINE_BYTES = 256 * 1024


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

    async def _deliver(self, messages: list[BusMessage], timeout_s: float) -> None:
        """Publish off the event loop (a producer may block on metadata), then wait for the bus
        to hold every message."""
        deliveries = await asyncio.to_thread(self.bus.publish_all, messages)
        # the embedded bus completes a whole group commit with one shared delivery
        await asyncio.wait_for(asyncio.gather(*(asyncio.wrap_future(d)
                                                for d in set(deliveries))), timeout_s)

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
        self.limiter = Limiter(config.limits)
        # per signal, the in-place steps: sampling returns how many items it dropped,
        # redaction how many values of each type it replaced
        self._steps: dict[Signal, tuple[Callable[[Any], int],
                                        Callable[[Any], Counter[str]]]] = {
            TRACES: (self.sampler.traces, self.redactor.traces),
            LOGS: (self.sampler.logs, self.redactor.logs)}

    async def export(self, request: Message, transport: str) -> Message:
        """Handle one OTLP export request; returns the OTLP response (with partial success)."""
        signal = next((s for s in SIGNALS if isinstance(request, s.request)), None)
        if signal is None:
            raise TypeError(f"not an OTLP export request: {type(request).__name__}")
        if request.ByteSize() > ACCEPT_INLINE_BYTES:
            outcome, messages = await asyncio.to_thread(self._accept, request, signal, transport)
        else:
            outcome, messages = self._accept(request, signal, transport)
        await self.forwarder.forward(messages)
        return signal.respond(outcome.rejected, outcome.message)

    def _accept(self, request: Message, signal: Signal,
                transport: str) -> tuple[Outcome, list[BusMessage]]:
        """Validate, sample and redact the request in place; then one bus message per trace."""
        sample, redact = self._steps[signal]
        metrics.RECEIVED.labels(signal.name, transport).inc(count(request, signal))
        rejected = keep_only(request, signal, signal.valid)
        metrics.REJECTED.labels(signal.name).inc(rejected)
        metrics.SAMPLED_OUT.labels(signal.name).inc(sample(request))
        _count_cuts(signal, self.limiter.counts(request, signal))
        for kind, n in redact(request).items():
            metrics.REDACTIONS.labels(signal.name, kind).inc(n)
        _count_cuts(signal, self.limiter.values(request, signal))
        header = (SIGNAL_HEADER, signal.name.encode())
        messages = [_message(part, trace_id, header)
                    for trace_id, part in _split(request, signal).items()]
        message = f"{rejected} {signal.noun} had invalid trace or span ids" if rejected else ""
        return Outcome(rejected, message), messages


def _count_cuts(signal: Signal, cuts: Cuts) -> None:
    for limit, n in cuts.items():
        metrics.LIMITED.labels(signal.name, limit).inc(n)


def _message(part: Message, trace_id: bytes, header: tuple[str, bytes]) -> BusMessage:
    return BusMessage(TOPIC_SPANS, trace_id.hex().encode() or None, part.SerializeToString(),
                      (header,))


def _split(request: M, signal: Signal) -> dict[bytes, M]:
    """One bus message per trace, so that a trace's spans and logs share a partition."""
    ids = {item.trace_id for item in items(request, signal)}
    if len(ids) <= 1:
        return {ids.pop(): request} if ids else {}
    out: dict[bytes, M] = {}
    for resource in getattr(request, signal.resources):
        resource_parts: dict[bytes, Any] = {}
        for scope in getattr(resource, signal.scopes):
            scope_parts: dict[bytes, Any] = {}
            for item in getattr(scope, signal.items):
                target = scope_parts.get(item.trace_id)
                if target is None:
                    parent = resource_parts.get(item.trace_id)
                    if parent is None:
                        part = out.setdefault(item.trace_id, type(request)())
                        parent = resource_parts[item.trace_id] = getattr(
                            part, signal.resources).add(resource=resource.resource,
                                                        schema_url=resource.schema_url)
                    target = scope_parts[item.trace_id] = getattr(parent, signal.scopes).add(
                        scope=scope.scope, schema_url=scope.schema_url)
                getattr(target, signal.items).append(item)
    return out
