"""Ingest: wk.spans → decode → join window → write (ClickHouse, then wk.samples) → commit.

The service only wires the parts, each a module with one job, like a Collector's receiver,
processors and exporter:

- `decode.py`: messages → prepared rows (compiled path or Python), dead letters;
- `joiner.py`: the join window, where spans gather their content log records;
- `writer.py`: batches, the replay guard, the writer thread, inserts, wk.samples;
- `offsets.py`: what may be committed, rebalances, commits.

The loop reads several batches' worth per poll and decodes it in chunks; a full batch goes to
the writer and is stored while the next chunk decodes. Nothing is in flight while polling: a
rebalance happens inside poll, and a write straddling it could neither commit its offsets (the
partitions are gone) nor be dropped, so the new owner would store its samples a second time.

Latency: every `flush_interval_s` the loop flushes, handing the writer what the join window let
go (spans that carry their content leave at the first flush, with the logs read with them);
the poll waits no longer than until the next flush is due.
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from watchkeeper.agent import metrics
from watchkeeper.agent.bus import TOPIC_SPANS, Bus, Consumer, Record, TopicPartition
from watchkeeper.agent.config import EvaluationReceiveConfig, IngestConfig
from watchkeeper.agent.ingest.decode import Decoder
from watchkeeper.agent.ingest.joiner import Joiner
from watchkeeper.agent.ingest.offsets import OffsetTracker
from watchkeeper.agent.ingest.writer import Writer
from watchkeeper.agent.lifecycle import LoopService
from watchkeeper.agent.store.client import Store
from watchkeeper.collectors.normalise import NormaliseOptions

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def _collector_paused(method: F) -> F:
    """Run a step with Python's cyclic garbage collector paused. A batch holds thousands of
    samples, all alive until the insert, and full collections during it scan each of them
    again and again for nothing: a quarter of ingest's time in bench/ingest_throughput.py.
    Reference counting still frees everything outside cycles; the collector resumes after."""

    @functools.wraps(method)
    def paused(*args: Any, **kwargs: Any) -> Any:
        if not gc.isenabled():  # someone else paused it: leave it as it is
            return method(*args, **kwargs)
        gc.disable()
        try:
            return method(*args, **kwargs)
        finally:
            gc.enable()

    return cast(F, paused)


LAG_EVERY_S = 5.0
READ_AHEAD = 4  # batches' worth of messages per poll: each is written while the next decodes
DECODE_CHUNK = 1000  # messages decoded at once by the compiled path


class IngestService(LoopService):
    name = "ingest"

    def __init__(self, bus: Bus, store: Store, config: IngestConfig,
                 evaluations: EvaluationReceiveConfig | None = None) -> None:
        self.config = config
        options = NormaliseOptions(hash_user_ids=config.hash_user_ids,
                                   user_id_salt=config.user_id_salt.get_secret_value())
        self.decoder = Decoder(bus, options, use_native=config.native != "off",
                               evaluations=evaluations)
        self.joiner = Joiner(config.join_window_s)
        self.writer = Writer(bus, store)
        self.offsets = OffsetTracker(bus, TOPIC_SPANS, config.group, on_revoke=self._drop)
        self._last_flush = time.monotonic()
        self._last_lag = 0.0

    @property
    def consumer(self) -> Consumer:
        return self.offsets.consumer

    @property
    def native(self) -> bool:
        """Whether the compiled path decodes."""
        return self.decoder.native

    @property
    def stored_samples(self) -> int:
        return self.writer.stored_samples

    # -- the loop -----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """The loop outlives a broker or database outage: it logs, waits and carries on."""
        while not stop.is_set():
            try:
                self.step(self._until_flush())
            except Exception:
                log.exception("ingest step failed, retrying")
                metrics.INGEST_STORE_ERRORS.inc()
                stop.wait(1.0)
        self.drain_bus()
        self.writer.close()
        self.offsets.close()

    def step(self, timeout_s: float) -> int:
        self._settle()  # nothing in flight while polling
        records = self.offsets.poll(self.config.batch_max_rows * READ_AHEAD, timeout_s)
        now = time.monotonic()
        for start in range(0, len(records), DECODE_CHUNK):
            self._take(records[start:start + DECODE_CHUNK], now)
            if len(self.writer) + self.joiner.complete >= self.config.batch_max_rows:
                self._collect(now)
                self._hand_off(now)  # stored while the next chunk is decoded
        if now - self._last_flush >= self.config.flush_interval_s:
            self.flush(now)
        if now - self._last_lag >= LAG_EVERY_S:
            metrics.INGEST_LAG.set(self.offsets.lag())
            self._last_lag = now
        metrics.INGEST_PENDING.set(len(self.joiner))
        return len(records)

    def drain_bus(self) -> None:
        """Take everything already on the bus, then flush the join window: used on SIGTERM.
        Whatever cannot be stored now stays uncommitted on the bus for the next start."""
        try:
            while self.step(0.05):
                pass
        except Exception:
            log.exception("bus unavailable while draining; storing what is held")
        self.flush(time.monotonic(), force=True)
        log.info("ingest drained", extra={"stored_samples": self.stored_samples})

    def flush(self, now: float, force: bool = False) -> None:
        """Store what the join window has released (with force: everything it holds)."""
        self._collect(now, force)
        self._hand_off(now)
        if force:
            self._settle()

    def _until_flush(self) -> float:
        """How long a poll may wait: until the next flush is due, at most 0.5 s."""
        due = self._last_flush + self.config.flush_interval_s - time.monotonic()
        return min(max(due, 0.0), 0.5)

    # -- wiring the parts -------------------------------------------------------------------------
    @_collector_paused
    def _take(self, chunk: list[Record], now: float) -> None:
        """Decode a chunk into the join window and the batch; its messages count as read.
        Messages an earlier run may have stored (offsets.replayed) are decoded apart, so the
        rows they bring besides samples go through the writer's replay guard."""
        unsure = [self.offsets.replayed(((r.topic, r.partition), r.offset)) for r in chunk]
        groups = [(chunk, False)] if not any(unsure) else \
            [([r for r, u in zip(chunk, unsure, strict=True) if u == replayed], replayed)
             for replayed in (False, True)]
        add_span, add_log = self.joiner.add_span, self.joiner.add_log
        for records, replayed in groups:
            decoded = self.decoder.decode(records)
            for row, ref in decoded.spans:
                add_span(row, ref, now)
            for item, ref in decoded.logs:  # after the spans: a log finds its span, or waits
                add_log(item, ref, now)
            self.writer.add_rows(decoded.span_rows, decoded.feedback_rows, replayed)
            self.writer.add_evaluations(decoded.scores, decoded.flags, decoded.by_response,
                                        replayed)
        self.offsets.read(chunk)

    @_collector_paused
    def _collect(self, now: float, force: bool = False) -> None:
        """Move what the join window releases into the batch, as rows."""
        joined, orphans = self.joiner.due(now, force)
        render, add, replayed = self.decoder.render, self.writer.add_sample, self.offsets.replayed
        for item in joined:
            add(render(item.row, item.logs), item.ref[0], replayed(item.ref))
        # Logs that never met their span: late duplicates of content the span already had
        # (streaming events without ids), or content of a span that was lost upstream.
        metrics.INGEST_ORPHAN_LOGS.inc(len(orphans))

    def _hand_off(self, now: float) -> None:
        """The batch goes to the writer; storing it makes safe what the tracker stages now."""
        self._last_flush = now
        self._settle()
        self.offsets.stage(self.joiner.refs())
        self.writer.hand_off()

    def _settle(self) -> None:
        if self.writer.settle():
            self.offsets.commit_staged()

    def _drop(self, partitions: set[TopicPartition]) -> None:
        """Partitions went to another consumer, which replays them from the last commit: what
        we hold from them is dropped rather than stored behind the new owner's back."""
        dropped = self.joiner.drop(partitions) + self.writer.drop(partitions)
        log.info("partitions revoked", extra={"partitions": sorted(partitions),
                                              "dropped": dropped})
