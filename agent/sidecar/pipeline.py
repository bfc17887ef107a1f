"""What the sidecar does to every accepted OTLP request, whatever the transport: the accept
step (accept.py: validate, sample, limit, redact, split by trace id), in this process or in
worker processes (workers.py), then forward to the bus topic wk.spans; an export is
acknowledged only once the bus holds it or the disk spool does.
"""

from __future__ import annotations

import asyncio
import logging

from google.protobuf.message import Message

from watchkeeper.agent import metrics
from watchkeeper.agent.bus import SIGNAL_HEADER, TOPIC_SPANS, Bus, BusError
from watchkeeper.agent.bus import Message as BusMessage
from watchkeeper.agent.config import SidecarConfig
from watchkeeper.agent.sidecar.accept import Accepted, Steps
from watchkeeper.agent.sidecar.signals import SIGNALS, Signal
from watchkeeper.agent.sidecar.spool import Spool, SpoolFull
from watchkeeper.agent.sidecar.workers import WorkerBroken, Workers

log = logging.getLogger(__name__)


# Requests over this are validated, redacted and split on a worker thread: redaction of a large
# hostile value takes seconds (1 MiB of digits and spaces, ~6 s of phone candidates), and the
# event loop goes on answering other exports meanwhile.
ACCEPT_INLINE_BYTES = 256 * 1024


class Unavailable(Exception):
    """The bus cannot take data now: answer with a retryable status so exporters retry."""


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
    def __init__(self, config: SidecarConfig, forwarder: Forwarder,
                 workers: Workers | None = None) -> None:
        self.forwarder = forwarder
        self.steps = Steps(config)
        self.workers = workers

    async def export(self, request: Message, transport: str) -> Message:
        """Handle one OTLP export request; returns the OTLP response (with partial success)."""
        signal = next((s for s in SIGNALS if isinstance(request, s.request)), None)
        if signal is None:
            raise TypeError(f"not an OTLP export request: {type(request).__name__}")
        if self.workers is not None:
            try:
                accepted = await self.workers.accept(request.SerializeToString(), signal)
            except WorkerBroken as exc:
                raise Unavailable(f"the sidecar's worker stopped: {exc}") from exc
        elif request.ByteSize() > ACCEPT_INLINE_BYTES:
            accepted = await asyncio.to_thread(self.steps.accept, request, signal)
        else:
            accepted = self.steps.accept(request, signal)
        _count(accepted, signal, transport)
        header = (SIGNAL_HEADER, signal.name.encode())
        await self.forwarder.forward([BusMessage(TOPIC_SPANS, trace_id.hex().encode() or None,
                                                 part, (header,))
                                      for trace_id, part in accepted.parts])
        why = (f"{accepted.rejected} {signal.noun} had invalid trace or span ids"
               if accepted.rejected else "")
        return signal.respond(accepted.rejected, why)


def _count(accepted: Accepted, signal: Signal, transport: str) -> None:
    metrics.RECEIVED.labels(signal.name, transport).inc(accepted.received)
    metrics.REJECTED.labels(signal.name).inc(accepted.rejected)
    metrics.SAMPLED_OUT.labels(signal.name).inc(accepted.sampled_out)
    for kind, n in accepted.redactions.items():
        metrics.REDACTIONS.labels(signal.name, kind).inc(n)
    for limit, n in accepted.cuts.items():
        metrics.LIMITED.labels(signal.name, limit).inc(n)
