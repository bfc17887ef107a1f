"""Watch: consumes normalised samples, runs every configured watcher over micro-batches
(by size and wait time), stores scores and embeddings, queues flags for review and publishes
flagged samples to wk.feedback. Offsets are committed after the insert, like ingest."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from watchkeeper.agent import metrics
from watchkeeper.agent.bus import (
    TOPIC_FEEDBACK,
    TOPIC_SAMPLES,
    Bus,
    BusError,
    Record,
    TopicPartition,
    dead_letter,
)
from watchkeeper.agent.bus.samples import samples_in, unpack
from watchkeeper.agent.config import WatchConfig
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.watch import scoring
from watchkeeper.agent.watch.loading import load_watcher, thresholds_for
from watchkeeper.collectors.normalise import Sample
from watchkeeper.detectors.watchers import Embedder, Watcher, WatcherSpec, items_for

log = logging.getLogger(__name__)
FLAG_NAMESPACE = uuid.UUID("5d0f1a52-8c1e-4a55-b0f8-3f4f5a8e2c71")
SCORE_COLUMNS = ("sample_id", "ts", "service", "watcher", "version", "field", "label", "score",
                 "flagged", "threshold", "latency_ms", "error")
EMBEDDING_COLUMNS = ("sample_id", "ts", "service", "model", "field", "vector")
FLAG_COLUMNS = ("flag_id", "sample_id", "ts", "service", "source", "reason", "label", "field",
                "score")
PUBLISH_TIMEOUT_S = 30.0


def flag_id(sample_id: str, source: str, label: str, field: str) -> uuid.UUID:
    """Stable per (sample, watcher, label, field): re-scoring never queues a sample twice."""
    return uuid.uuid5(FLAG_NAMESPACE, f"{sample_id}:{source}:{label}:{field}")


class WatchService:
    def __init__(self, bus: Bus, store: Store, config: WatchConfig, data_dir: Path) -> None:
        self.bus = bus
        self.store = store
        self.config = config
        # Built before consuming anything: a watcher that cannot load stops the start.
        self.watchers: list[tuple[WatcherSpec, Watcher | Embedder]] = [
            (spec, load_watcher(spec, config, data_dir))
            for spec in config.watchers if spec.enabled]
        self.thresholds = {spec.name: thresholds_for(spec, watcher)
                           for spec, watcher in self.watchers}
        self.consumer = bus.consumer(TOPIC_SAMPLES, config.group)
        self.scored_samples = 0
        self.flagged_samples = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("watch step failed, retrying")
                stop.wait(1.0)
        while self.step(wait=False):
            pass
        self.consumer.close()

    def step(self, wait: bool = True) -> int:
        """Gather about batch_max samples, waiting at most batch_wait_ms, then score them (a
        message holds up to 64 samples, so a turn may take a message's worth more)."""
        records: list[Record] = []
        held = 0
        # an idle consumer waits half a second per turn, so a stop is seen promptly
        deadline = time.monotonic() + max(self.config.batch_wait_ms / 1000, 0.05)
        if not wait:
            deadline = time.monotonic()
        while held < self.config.batch_max:
            left = deadline - time.monotonic()
            if left <= 0 and (records or not wait):
                break
            got = self.consumer.poll(self.config.batch_max - held, max(min(left, 0.5), 0.05))
            records += got
            held += sum(samples_in(r.value) for r in got)
            if left <= 0:
                break
        if records:
            self._process(records)
        return len(records)

    def _process(self, records: list[Record]) -> None:
        samples: list[Sample] = []
        for record in records:
            for line in unpack(record.value):
                try:
                    samples.append(Sample.model_validate_json(line))
                except ValueError as exc:  # only this line is set aside, not its neighbours
                    dead_letter(self.bus, record, exc, value=line).result(PUBLISH_TIMEOUT_S)
        by_id = {str(s.sample_id): s for s in samples}
        scores, vectors, flags = self._score(samples, by_id)
        self.store.insert("scores", scores, SCORE_COLUMNS)
        self.store.insert("embeddings", vectors, EMBEDDING_COLUMNS)
        self.store.insert("flags", flags, FLAG_COLUMNS)
        self._publish_flagged(flags, by_id)
        self.scored_samples += len(samples)
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = (record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        try:
            self.consumer.commit(offsets)
        except BusError as exc:
            log.warning("offset commit failed", extra={"error": str(exc)})

    def _score(self, samples: Sequence[Sample], by_id: dict[str, Sample]
               ) -> tuple[list[list[Any]], list[list[Any]], list[list[Any]]]:
        scores: list[list[Any]] = []
        vectors: list[list[Any]] = []
        flags: list[list[Any]] = []
        for spec, watcher in self.watchers:
            items = [item for s in samples for item in items_for(s, spec.field)]
            if not items:
                continue
            if isinstance(watcher, Embedder):
                for out in scoring.embed(watcher, items):
                    if out.vector is not None:
                        s = by_id[out.item.sample_id]
                        vectors.append([s.sample_id, s.ts, s.service, watcher.name,
                                        out.item.field, out.vector])
                continue
            started = time.perf_counter()
            thresholds = self.thresholds[spec.name]
            for out in scoring.score(watcher, items):
                s = by_id[out.item.sample_id]
                base = [s.sample_id, s.ts, s.service, watcher.name, watcher.version,
                        out.item.field]
                if out.scores is None:
                    scores.append([*base, "_error", 0.0, False, None, out.latency_ms, out.error])
                    continue
                for label, value in out.scores.items():
                    threshold = thresholds.get(label)
                    flagged = threshold is not None and value >= threshold
                    scores.append([*base, label, float(value), flagged, threshold,
                                   out.latency_ms, ""])
                    if flagged:
                        source = f"watcher:{watcher.name}"
                        flags.append([flag_id(str(s.sample_id), source, label, out.item.field),
                                      s.sample_id,
                                      s.ts, s.service, source,
                                      f"{label} {value:.2f} >= {threshold:g} on {out.item.field}",
                                      label, out.item.field, float(value)])
            metrics.WATCH_SECONDS.labels(watcher.name).observe(time.perf_counter() - started)
            metrics.WATCH_ITEMS.labels(watcher.name).inc(len(items))
        return scores, vectors, flags

    def _publish_flagged(self, flags: list[list[Any]], by_id: dict[str, Sample]) -> None:
        reasons: dict[str, list[dict[str, Any]]] = {}
        for row in flags:
            reasons.setdefault(str(row[1]), []).append(
                {"source": row[4], "label": row[6], "field": row[7], "score": row[8],
                 "reason": row[5]})
        deliveries = []
        for sample_id, why in reasons.items():
            sample = by_id[sample_id]
            payload = {"sample": json.loads(sample.model_dump_json()), "flags": why}
            deliveries.append(self.bus.publish(TOPIC_FEEDBACK, json.dumps(payload).encode(),
                                               key=sample.trace_id.encode()))
        for delivery in deliveries:
            delivery.result(PUBLISH_TIMEOUT_S)
        metrics.WATCH_FLAGGED.inc(len(reasons))
        self.flagged_samples += len(reasons)
