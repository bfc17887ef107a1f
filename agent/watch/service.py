"""Watch: one service per lane (lanes.py): consumes normalised samples (or, in a cascade's
lane, flagged ones), runs the lane's watchers over micro-batches (by size and wait time),
stores scores and embeddings, queues flags for review and publishes flagged samples to
wk.flagged. Offsets are committed after the insert, like ingest, and a replayed stretch is
stored without duplicates (replay.py)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from watchkeeper.agent import metrics
from watchkeeper.agent.bus import (
    TOPIC_FLAGGED,
    Bus,
    BusError,
    Record,
    TopicPartition,
    dead_letter,
)
from watchkeeper.agent.bus.flagged import Flag, FlaggedSample
from watchkeeper.agent.bus.samples import REPLAYED_HEADER, samples_in, unpack
from watchkeeper.agent.config import EvaluationExportConfig, WatchConfig
from watchkeeper.agent.evaluations.emitter import EvaluationEmitter
from watchkeeper.agent.evaluations.events import from_score
from watchkeeper.agent.lifecycle import LoopService
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.tables import (
    EMBEDDINGS,
    FLAGS,
    SCORES,
    EmbeddingRow,
    FlagRow,
    ScoreRow,
    flag_id,
)
from watchkeeper.agent.watch import replay, scoring
from watchkeeper.agent.watch.budget import Budget
from watchkeeper.agent.watch.lanes import Lane, plan
from watchkeeper.agent.watch.loading import load_watcher, thresholds_for
from watchkeeper.collectors.normalise import Sample
from watchkeeper.detectors.watchers import (
    AsyncWatcher,
    Embedder,
    Item,
    Watcher,
    WatcherSpec,
    is_io_bound,
    items_for,
)
from watchkeeper.detectors.watchers.sampling import SCORED, choose

log = logging.getLogger(__name__)
PUBLISH_TIMEOUT_S = 30.0
SKIPPED = "_skipped"  # the label of a score row for an item a budget or backlog turned away
PREFIX = "watcher:"  # a flag's source names its watcher after this


class WatchService(LoopService):
    def __init__(self, bus: Bus, store: Store, config: WatchConfig, lane: Lane,
                 budgets: Mapping[str, Budget], *, emitter: EvaluationEmitter | None = None,
                 export: EvaluationExportConfig | None = None) -> None:
        self.name = lane.name
        self.lane = lane
        self.bus = bus
        self.store = store
        self.config = config
        # scores also go out as gen_ai.evaluation.result records, once stored (the emitter is
        # the process's: whoever made it closes it)
        self.emitter = emitter
        self.export = export or EvaluationExportConfig()
        self.watchers: list[tuple[WatcherSpec, Watcher | AsyncWatcher | Embedder]] = \
            list(lane.watchers)
        self.thresholds = {spec.name: thresholds_for(spec, watcher)
                           for spec, watcher in self.watchers}
        self.by_name = {spec.name: watcher for spec, watcher in self.watchers}
        # a watcher in a cascade (`sampling.after`) scores once those it follows have flagged
        self.rounds = [[(spec, w) for spec, w in self.watchers if not spec.sampling.after],
                       [(spec, w) for spec, w in self.watchers if spec.sampling.after]]
        # shared with the watcher's other lane: one budget per watcher
        self.budgets = {spec.name: budgets[spec.name] for spec, _ in self.watchers
                        if spec.name in budgets}
        self.consumer = bus.consumer(lane.topic, lane.group, on_revoke=self._revoked)
        self._held: list[Record] = []  # read, not yet stored
        # records of a pass that failed part-way: some of their rows may be stored
        self._unsure: set[tuple[str, int, int]] = set()
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

    async def stop(self) -> None:
        """Close what the lane's watchers hold open past their batches (the judge's HTTP
        clients); a watcher in two lanes is closed by one of them."""
        for spec, watcher in self.watchers:
            close = getattr(watcher, "close", None) if spec.name in self.lane.closes else None
            if callable(close):
                close()

    def step(self, wait: bool = True) -> int:
        """Gather about batch_max samples, waiting at most batch_wait_ms, then score them (a
        message holds up to 64 samples, so a turn may take a message's worth more)."""
        # an idle consumer waits half a second per turn, so a stop is seen promptly
        deadline = time.monotonic() + max(self.config.batch_wait_ms / 1000, 0.05)
        if not wait:
            deadline = time.monotonic()
        while (held := sum(samples_in(r.value) for r in self._held)) < self.config.batch_max:
            left = deadline - time.monotonic()
            if left <= 0 and (self._held or not wait):
                break
            got = self.consumer.poll(self.config.batch_max - held, max(min(left, 0.5), 0.05))
            self._held += got  # after poll: a rebalance inside it may have trimmed _held
            if left <= 0:
                break
        records, self._held = self._held, []
        if records:
            self._process(records)
        return len(records)

    def _revoked(self, partitions: Iterable[TopicPartition]) -> None:
        """Called from inside poll: drop what is held from partitions that went to another
        consumer, which reads them again from the last commit."""
        lost = set(partitions)
        self._held = [r for r in self._held if (r.topic, r.partition) not in lost]
        self._unsure = {u for u in self._unsure if u[:2] not in lost}

    def _process(self, records: list[Record]) -> None:
        """Score and store the records' samples, publish the flagged ones, then commit. A pass
        that fails is held to be retried with the next step, every row of it checked."""
        try:
            by_id, replayed, leaders = self._read(records)
            scores, vectors, flags = self._score(list(by_id.values()), by_id, leaders)
            replay.insert_new(self.store, SCORES, scores, replayed)
            replay.insert_new(self.store, EMBEDDINGS, vectors, replayed)
            replay.insert_new(self.store, FLAGS, flags, replayed)
            self._publish_flagged(flags, by_id)
            self._emit(scores, by_id)
        except Exception:
            self._held = records + self._held
            self._unsure |= {(r.topic, r.partition, r.offset) for r in records}
            raise
        self._unsure.clear()
        self.scored_samples += len(by_id)
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = (record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        try:
            self.consumer.commit(offsets)
        except BusError as exc:
            log.warning("offset commit failed", extra={"error": str(exc)})

    def _read(self, records: list[Record]
              ) -> tuple[dict[str, Sample], set[uuid.UUID], dict[str, set[str]]]:
        """The samples by id; the ids of those an earlier pass may have stored: read from
        below their partition's replay horizon, part of a pass that failed, or sent again by
        ingest after its own replay (the wk-replayed header); and, in a cascade's lane, which
        watchers flagged each (a wk.flagged message is at least once: every sample of such a
        lane is checked against the store)."""
        if self.lane.cascade:
            return self._read_flagged(records)
        horizon = self.consumer.replay_horizon()
        by_id: dict[str, Sample] = {}
        replayed: set[uuid.UUID] = set()
        for record in records:
            unsure = (record.offset < horizon.get((record.topic, record.partition), 0)
                      or (record.topic, record.partition, record.offset) in self._unsure
                      or record.header(REPLAYED_HEADER[0]) is not None)
            for line in unpack(record.value):
                try:
                    sample = Sample.model_validate_json(line)
                except ValueError as exc:  # only this line is set aside, not its neighbours
                    dead_letter(self.bus, record, exc, value=line).result(PUBLISH_TIMEOUT_S)
                    continue
                by_id[str(sample.sample_id)] = sample
                if unsure:
                    replayed.add(sample.sample_id)
        return by_id, replayed, {}

    def _read_flagged(self, records: list[Record]
                      ) -> tuple[dict[str, Sample], set[uuid.UUID], dict[str, set[str]]]:
        by_id: dict[str, Sample] = {}
        leaders: dict[str, set[str]] = {}
        for record in records:
            try:
                message = FlaggedSample.decode(record.value)
            except ValueError as exc:
                dead_letter(self.bus, record, exc).result(PUBLISH_TIMEOUT_S)
                continue
            key = str(message.sample.sample_id)
            by_id[key] = message.sample
            leaders.setdefault(key, set()).update(
                f.source.removeprefix(PREFIX) for f in message.flags
                if f.source.startswith(PREFIX))
        return by_id, {s.sample_id for s in by_id.values()}, leaders

    def _score(self, samples: Sequence[Sample], by_id: dict[str, Sample],
               leaders: dict[str, set[str]]
               ) -> tuple[list[ScoreRow], list[EmbeddingRow], list[FlagRow]]:
        scores: list[ScoreRow] = []
        vectors: list[EmbeddingRow] = []
        flags: list[FlagRow] = []
        # sample id -> the watchers that flagged it (in this pass, or before: wk.flagged)
        flagged_by: dict[str, set[str]] = {k: set(v) for k, v in leaders.items()}
        for watchers in self.rounds:
            chosen = {spec.name: self._chosen(spec, samples, flagged_by, by_id, scores)
                      for spec, _ in watchers}
            # I/O-bound watchers (an LLM judge) wait on the network, on the I/O loop, while
            # the others compute here.
            running = {spec.name: scoring.start(watcher, items)
                       for spec, watcher in watchers if is_io_bound(watcher)
                       if (items := chosen[spec.name])}
            for spec, watcher in watchers:
                items = chosen[spec.name]
                if not items:
                    continue
                if isinstance(watcher, Embedder):
                    for out in scoring.embed(watcher, items):
                        if out.vector is not None:
                            s = by_id[out.item.sample_id]
                            vectors.append(EmbeddingRow(
                                sample_id=s.sample_id, ts=s.ts, service=s.service,
                                model=watcher.name, field=out.item.field, vector=out.vector))
                    continue
                started = time.perf_counter()
                thresholds = self.thresholds[spec.name]
                outcomes = running[spec.name].result() if spec.name in running else \
                    scoring.score(watcher, items)
                for out in outcomes:
                    s = by_id[out.item.sample_id]
                    base = self._row_base(watcher, s, out.item.field, out.latency_ms)
                    if out.scores is None:
                        scores.append(ScoreRow(**base, label="_error", score=0.0,
                                               flagged=False, threshold=None, error=out.error))
                        continue
                    for label, value in out.scores.items():
                        threshold = thresholds.get(label)
                        flagged = threshold is not None and value >= threshold
                        scores.append(ScoreRow(**base, label=label, score=float(value),
                                               flagged=flagged, threshold=threshold, error=""))
                        if flagged:
                            source = f"{PREFIX}{watcher.name}"
                            flagged_by.setdefault(out.item.sample_id, set()).add(spec.name)
                            flags.append(FlagRow(
                                flag_id=flag_id(str(s.sample_id), source, label,
                                                out.item.field),
                                sample_id=s.sample_id, ts=s.ts, service=s.service,
                                source=source, label=label, field=out.item.field,
                                reason=f"{label} {value:.2f} >= {threshold:g} on "
                                       f"{out.item.field}", score=float(value)))
                metrics.WATCH_SECONDS.labels(watcher.name).observe(time.perf_counter() - started)
                metrics.WATCH_ITEMS.labels(watcher.name).inc(len(items))
        return scores, vectors, flags

    @staticmethod
    def _row_base(watcher: Watcher | AsyncWatcher | Embedder, sample: Sample, field: str,
                  latency_ms: float) -> dict[str, Any]:
        return {"sample_id": sample.sample_id, "ts": sample.ts, "service": sample.service,
                "watcher": watcher.name, "version": getattr(watcher, "version", ""),
                "field": field, "latency_ms": latency_ms}

    def _chosen(self, spec: WatcherSpec, samples: Sequence[Sample],
                flagged_by: dict[str, set[str]], by_id: dict[str, Sample],
                skipped: list[ScoreRow]) -> list[Item]:
        """The items a watcher scores in this pass: the samples its sampling policy chooses
        (those a cascade sends first; in a cascade's lane only those, and not those the rate
        chose, which the watcher's wk.samples lane scores), then, in a watcher's own lane,
        those not older than its `max_delay_s`, then what its budget allows. What the backlog
        bound or the budget turns away is a `_skipped` row saying why."""
        first: list[Item] = []
        rest: list[Item] = []
        for sample in samples:
            decide = partial(choose, spec.sampling, spec.name, sample_id=str(sample.sample_id),
                             service=sample.service, environment=sample.environment,
                             models=(sample.request_model, sample.response_model))
            choice = decide(flagged_by=flagged_by.get(str(sample.sample_id), ()))
            if self.lane.cascade and (choice != "cascade" or decide(flagged_by=()) == "chosen"):
                continue  # not this lane's to score, or not its alone
            if choice not in SCORED:
                metrics.WATCH_SKIPPED.labels(spec.name, choice).inc()
                continue
            (first if choice == "cascade" else rest).extend(items_for(sample, spec.field))
        refused: list[tuple[Item, str]] = []
        allowed = first + rest
        if self.lane.own and spec.sampling.max_delay_s is not None:
            oldest = datetime.now(UTC) - timedelta(seconds=spec.sampling.max_delay_s)
            late = [i for i in allowed if _utc(by_id[i.sample_id].ts) < oldest]
            refused += [(item, "backlog") for item in late]
            allowed = [i for i in allowed if _utc(by_id[i.sample_id].ts) >= oldest]
        budget = self.budgets.get(spec.name)
        if budget is not None:
            allowed, over = budget.admit(allowed)
            refused += over
        watcher = self.by_name[spec.name]
        for item, reason in refused:
            metrics.WATCH_SKIPPED.labels(spec.name, reason).inc()
            why = (f"skipped: reached {spec.sampling.max_delay_s:g} s after the call (backlog)"
                   if reason == "backlog" or budget is None else budget.describe(reason))
            skipped.append(ScoreRow(**self._row_base(watcher, by_id[item.sample_id], item.field,
                                                     0.0),
                                    label=SKIPPED, score=0.0, flagged=False, threshold=None,
                                    error=why))
        for name, left in (budget.remaining().items() if budget is not None else ()):
            metrics.WATCH_BUDGET.labels(spec.name, name).set(left)
        return allowed

    def _emit(self, scores: list[ScoreRow], by_id: dict[str, Sample]) -> None:
        """Stored scores as evaluation events of their samples' spans (at least once: a pass
        replayed after a crash sends its events again)."""
        if self.emitter is None:
            return
        kinds = {watcher.name: spec.kind for spec, watcher in self.watchers}
        results = []
        for row in scores:
            if not self.export.sends(row.watcher) or row.label == SKIPPED:
                continue
            sample = by_id[str(row.sample_id)]
            try:
                results.append(from_score(row, sample.trace_id, sample.span_id,
                                          kinds.get(row.watcher, "")))
            except ValueError as exc:  # ids no span of OpenTelemetry's could have
                log.warning("score not sent as an evaluation event",
                            extra={"sample_id": str(row.sample_id), "error": str(exc)})
        self.emitter.emit(results, "watcher")

    def _publish_flagged(self, flags: list[FlagRow], by_id: dict[str, Sample]) -> None:
        """One wk.flagged message per flagged sample (bus/flagged.py has the contract)."""
        reasons: dict[str, list[Flag]] = {}
        for flag in flags:
            reasons.setdefault(str(flag.sample_id), []).append(Flag(
                flag_id=flag.flag_id, source=flag.source, label=flag.label, field=flag.field,
                score=flag.score, reason=flag.reason))
        deliveries = []
        for sample_id, why in reasons.items():
            sample = by_id[sample_id]
            message = FlaggedSample(sample=sample, flags=why)
            deliveries.append(self.bus.publish(TOPIC_FLAGGED, message.encode(),
                                               key=sample.trace_id.encode()))
        for delivery in deliveries:
            delivery.result(PUBLISH_TIMEOUT_S)
        metrics.WATCH_FLAGGED.inc(len(reasons))
        self.flagged_samples += len(reasons)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def watch_services(bus: Bus, store: Store, config: WatchConfig, data_dir: Path, *,
                   emitter: EvaluationEmitter | None = None,
                   export: EvaluationExportConfig | None = None) -> list[WatchService]:
    """A service per lane (lanes.py), every watcher built first: one that cannot load stops
    the start before anything is consumed."""
    loaded = [(spec, load_watcher(spec, config, data_dir))
              for spec in config.watchers if spec.enabled]
    budgets = {spec.name: Budget(spec.sampling, len(getattr(watcher, "rubrics", ())))
               for spec, watcher in loaded if spec.sampling.budgeted}
    return [WatchService(bus, store, config, lane, budgets, emitter=emitter, export=export)
            for lane in plan(config, loaded)]
