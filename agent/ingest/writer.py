"""Write: batches of rows into ClickHouse (samples, spans, user_feedback, and the scores and
flags of evaluation events received), then wk.samples.

Why a part of its own: storing is ingest's slow half, and the part that must not store a
sample twice. A batch is stored on a writer thread while the reading thread decodes the next
one (the insert and the compiled decoder both run without the GIL); one batch is in flight at a
time, so a slow store slows reading down. The reading thread hands a batch off and later
settles it; only a stored batch lets its offsets be committed (offsets.py). A batch that fails
comes back to be retried with the next one.

The replay guard (decision 0004): samples from the stretch of a partition that an earlier owner
may already have stored (`add_sample(..., replayed=True)`), and every sample of a batch that
failed (part of it may have landed), are looked up in `samples` before the insert, and only
the missing ones go in. Beyond that stretch ids are new by construction: a trace's messages
share a partition, and a partition has one owner. The rows that come with them are guarded the
same way, each table by what tells its rows apart: `spans` by trace, span and start time,
`user_feedback` by the rated call and the feedback's time, received evaluations in `scores` by
sample, evaluator, name and field (their time may be the arrival's). Flags need no guard: one
flag id is one row to every reader (FINAL).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Hashable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from watchkeeper.agent import metrics
from watchkeeper.agent.bus import TOPIC_SAMPLES, Bus, TopicPartition
from watchkeeper.agent.bus.samples import REPLAYED_HEADER, pack
from watchkeeper.agent.evaluations.events import Received
from watchkeeper.agent.ingest.decode import EPOCH, PUBLISH_TIMEOUT_S, SampleRow
from watchkeeper.agent.store import replay
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.tables import (
    FLAGS,
    SAMPLES,
    SCORES,
    SPANS,
    USER_FEEDBACK,
    FlagRow,
    ScoreRow,
    Table,
)

log = logging.getLogger(__name__)
RESPONSE_LOOKBACK_DAYS = 7  # how far back an evaluation's response id is looked for
# What tells a table's rows apart, for the replay guard (stored_keys: the first is looked up)
SPAN_KEY = ("trace_id", "span_id", "toUnixTimestamp64Micro(ts)")
FEEDBACK_KEY = SPAN_KEY  # the rated call's ids and the feedback's own time
SCORE_KEY = ("sample_id", "watcher", "label", "field")
EVENT_SLACK = timedelta(days=1)
RECENT_SAMPLES = 200_000  # about 3 minutes at 1,000 spans/s: ~20 MB of ids, ~12 MB of rows'


@dataclass(slots=True)
class _Batch:
    samples: dict[str, SampleRow] = field(default_factory=dict)  # by sample id
    partition_of: dict[str, TopicPartition] = field(default_factory=dict)
    maybe_stored: set[str] = field(default_factory=set)  # sample ids the replay guard checks
    spans: list[bytes] = field(default_factory=list)  # JSON rows (rows.json_row)
    feedback: list[bytes] = field(default_factory=list)
    scores: list[ScoreRow] = field(default_factory=list)
    flags: list[FlagRow] = field(default_factory=list)
    by_response: list[Received] = field(default_factory=list)  # joined once samples are in
    unsure: _Unsure = field(default_factory=lambda: _Unsure())  # the replay guard checks these

    def __len__(self) -> int:
        return (len(self.samples) + len(self.spans) + len(self.feedback) + len(self.scores)
                + len(self.by_response) + len(self.unsure))

    def all_unsure(self) -> None:
        """After a failed store, any row of the batch may have landed."""
        self.maybe_stored.update(self.samples)
        self.unsure.spans += self.spans
        self.unsure.feedback += self.feedback
        self.unsure.scores += self.scores
        self.unsure.by_response += self.by_response
        self.spans, self.feedback, self.scores, self.by_response = [], [], [], []

    def absorb(self, newer: _Batch) -> None:
        self.samples.update(newer.samples)
        self.partition_of.update(newer.partition_of)
        self.maybe_stored |= newer.maybe_stored
        self.spans += newer.spans
        self.feedback += newer.feedback
        self.scores += newer.scores
        self.flags += newer.flags
        self.by_response += newer.by_response
        self.unsure.absorb(newer.unsure)


@dataclass(slots=True)
class _Unsure:
    """Rows from records an earlier run may have stored: checked against the store first."""

    spans: list[bytes] = field(default_factory=list)
    feedback: list[bytes] = field(default_factory=list)
    scores: list[ScoreRow] = field(default_factory=list)
    by_response: list[Received] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.spans) + len(self.feedback) + len(self.scores) + len(self.by_response)

    def absorb(self, newer: _Unsure) -> None:
        self.spans += newer.spans
        self.feedback += newer.feedback
        self.scores += newer.scores
        self.by_response += newer.by_response


@dataclass(slots=True)
class _Write:
    """A batch being stored on the writer thread."""

    batch: _Batch
    done: Future[None]


class RecentIds:
    """The newest `size` ids seen, for membership tests: a dict keeps their order."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: dict[Hashable, None] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def update(self, keys: Iterable[Hashable]) -> None:
        ids = self._ids
        for key in keys:
            ids.pop(key, None)
            ids[key] = None
        for _ in range(len(ids) - self.size):
            del ids[next(iter(ids))]


def _score_key(row: ScoreRow) -> tuple[object, ...]:
    """What makes a received evaluation the same one: the replay guard's key and its time."""
    return ("score", row.sample_id, row.watcher, row.label, row.field, row.ts)


class Writer:
    def __init__(self, bus: Bus, store: Store) -> None:
        self.bus = bus
        self.store = store
        self.stored_samples = 0
        self._batch = _Batch()
        self._inflight: _Write | None = None
        # Sample ids stored (or found stored) by this run, newest last: an export sent again
        # (a client that got no answer from a process that died after logging it) is dropped
        # instead of stored twice. Touched by the writer thread only.
        self._recent = RecentIds(RECENT_SAMPLES)
        # The same for the rows of spans and feedback, by their line's hash (a row's line is
        # the same each time its span is normalised; the server stamps `ingested_at`), and for
        # received evaluations, by the replay guard's key and their time.
        self._recent_rows = RecentIds(RECENT_SAMPLES)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wk-ingest-writer")

    def __len__(self) -> int:
        """Rows in the batch being filled."""
        return len(self._batch)

    # -- the reading thread: filling the batch ------------------------------------------------
    def add_sample(self, row: SampleRow, partition: TopicPartition, replayed: bool) -> None:
        batch = self._batch
        batch.samples[row.sample_id] = row
        batch.partition_of[row.sample_id] = partition
        if replayed:
            batch.maybe_stored.add(row.sample_id)

    def add_rows(self, spans: list[bytes], feedback: list[bytes], replayed: bool) -> None:
        into = self._batch.unsure if replayed else self._batch
        into.spans += spans
        into.feedback += feedback

    def add_evaluations(self, scores: list[ScoreRow], flags: list[FlagRow],
                        by_response: list[Received], replayed: bool) -> None:
        into = self._batch.unsure if replayed else self._batch
        into.scores += scores
        into.by_response += by_response
        self._batch.flags += flags

    def drop(self, partitions: set[TopicPartition]) -> int:
        """Forget the samples of the batch being filled that came from these partitions (their
        new owner stores them); returns how many. Nothing is in flight: rebalances happen
        inside poll, and the reading thread settles before it polls."""
        batch = self._batch
        lost = [key for key, tp in batch.partition_of.items() if tp in partitions]
        for key in lost:
            batch.samples.pop(key, None)
            batch.maybe_stored.discard(key)
            del batch.partition_of[key]
        return len(lost)

    # -- handing off and settling ---------------------------------------------------------------
    def hand_off(self) -> None:
        """Start storing the batch on the writer thread (settle the one before first)."""
        assert self._inflight is None, "one batch in flight at a time: settle first"
        batch, self._batch = self._batch, _Batch()
        self._inflight = _Write(batch, self._thread.submit(self._store, batch))

    def settle(self) -> bool:
        """Wait for the batch in flight; returns whether one was stored. A batch that failed
        is taken back to be retried with the next one; part of it may have landed, so every
        sample in it is checked before the retry."""
        write, self._inflight = self._inflight, None
        if write is None:
            return False
        try:
            write.done.result()
        except Exception:
            log.exception("storing a batch failed, will retry")
            metrics.INGEST_STORE_ERRORS.inc()
            write.batch.all_unsure()
            write.batch.absorb(self._batch)
            self._batch = write.batch
            return False
        self.stored_samples += len(write.batch.samples)
        return True

    def close(self) -> None:
        self._thread.shutdown()

    # -- the writer thread ------------------------------------------------------------------------
    def _store(self, batch: _Batch) -> None:
        """The batch is left as it came: should a step fail, all of it is retried."""
        stored = self._already_stored(batch)
        earlier = [batch.samples[key].line for key in stored if key not in self._recent]
        samples = [row for key, row in batch.samples.items()
                   if key not in stored and key not in self._recent]
        self._insert(SAMPLES, [row.line for row in samples if row.row_binary is None])
        self._insert(SAMPLES, [row.row_binary for row in samples if row.row_binary is not None],
                     row_binary=True)
        unsure = batch.unsure
        spans = self._new_rows(batch.spans + self._unstored_lines(SPANS, unsure.spans, SPAN_KEY))
        feedback = self._new_rows(batch.feedback + self._unstored_lines(
            USER_FEEDBACK, unsure.feedback, FEEDBACK_KEY))
        self._insert(SPANS, spans)
        self._insert(USER_FEEDBACK, feedback)
        scores, flags = self._by_response(batch.by_response)
        replayed, replayed_flags = self._by_response(unsure.by_response)
        received = self._new_scores(batch.scores + scores
                                    + self._unstored_scores(unsure.scores + replayed))
        self._insert_rows(SCORES, received)
        self._insert_rows(FLAGS, batch.flags + flags + replayed_flags)
        deliveries = [self.bus.publish(TOPIC_SAMPLES, message)
                      for message in pack([row.line for row in samples])]
        # Stored before a crash, and perhaps never published: out again, marked as such.
        deliveries += [self.bus.publish(TOPIC_SAMPLES, message, headers=(REPLAYED_HEADER,))
                       for message in pack(earlier)]
        for delivery in deliveries:
            delivery.result(PUBLISH_TIMEOUT_S)
        self._recent.update(batch.samples)
        self._recent_rows.update(hash(line) for line in spans + feedback)
        self._recent_rows.update(_score_key(row) for row in received)

    def _new_scores(self, rows: list[ScoreRow]) -> list[ScoreRow]:
        """Received evaluations no recent batch stored, each once."""
        new: dict[tuple[object, ...], ScoreRow] = {}
        for row in rows:
            key = _score_key(row)
            if key not in self._recent_rows:
                new.setdefault(key, row)
        return list(new.values())

    def _new_rows(self, lines: list[bytes]) -> list[bytes]:
        """The lines no recent batch stored, each once (an export sent again, perhaps twice
        into one batch)."""
        new: dict[int, bytes] = {}
        for line in lines:
            key = hash(line)
            if key not in self._recent_rows:
                new.setdefault(key, line)
        return list(new.values())

    def _insert_rows(self, table: Table[Any], models: list[Any]) -> None:
        """Rows of a table's model (the few that evaluation events bring)."""
        if models:
            self.store.insert_rows(table, models)
            metrics.INGEST_ROWS.labels(table.name).inc(len(models))

    def _by_response(self, received: list[Received]) -> tuple[list[ScoreRow], list[FlagRow]]:
        """Evaluations that name only the call's `gen_ai.response.id`, as rows of the sample
        with that response id: stored before, or in this batch just above (a span still in the
        join window is not: such an evaluation is counted unjoined, like one naming nothing)."""
        if not received:
            return [], []
        sql = (f"SELECT response_id, any(sample_id), any(service) FROM "
               f"{self.store.database}.samples WHERE response_id IN {{ids:Array(String)}} "
               f"AND ts >= now() - INTERVAL {RESPONSE_LOOKBACK_DAYS} DAY GROUP BY response_id")
        ids = sorted({r.response_id for r in received})
        found = {response_id: (uuid.UUID(str(sample_id)), service) for response_id, sample_id,
                 service in self.store.query(sql, parameters={"ids": ids}).rows}
        scores: list[ScoreRow] = []
        flags: list[FlagRow] = []
        for event in received:
            sample = found.get(event.response_id)
            metrics.INGEST_EVALUATIONS.labels("stored" if sample else "unjoined").inc()
            if sample is not None:
                score, flag = event.rows(*sample)
                scores.append(score)
                flags += [flag] if flag is not None else []
        return scores, flags

    def _unstored_lines(self, table: Table[Any], lines: list[bytes], key: tuple[str, ...]
                        ) -> list[bytes]:
        """JSON rows of spans or feedback whose (trace id, span id, time) the table lacks."""
        if not lines:
            return []
        keyed = []
        for line in lines:
            row = json.loads(line)
            ts = datetime.fromisoformat(row["ts"])
            ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
            keyed.append((line, (row["trace_id"], row["span_id"],
                                 str((ts - EPOCH) // timedelta(microseconds=1))), ts))
        found = replay.stored_keys(self.store, table, key, {k[0] for _, k, _ in keyed},
                                   min(t for *_, t in keyed), max(t for *_, t in keyed))
        return [line for line, k, _ in keyed if k not in found]

    def _unstored_scores(self, rows: list[ScoreRow]) -> list[ScoreRow]:
        """Received evaluations no earlier run stored: by sample, evaluator, name and field,
        within a day of their time (a record without one took its arrival's)."""
        if not rows:
            return []
        stamps = [row.ts for row in rows]
        found = replay.stored_keys(self.store, SCORES, SCORE_KEY, {r.sample_id for r in rows},
                                   min(stamps) - EVENT_SLACK, max(stamps) + EVENT_SLACK)
        return [row for row in rows if (str(row.sample_id), row.watcher, row.label, row.field)
                not in found]

    def _already_stored(self, batch: _Batch) -> set[str]:
        """The replay guard: which of the batch's maybe-stored samples `samples` holds."""
        if not batch.maybe_stored:
            return set()
        stamps = [batch.samples[k].ts_us for k in batch.maybe_stored]
        found = replay.stored_keys(self.store, SAMPLES, ("sample_id",),
                                   [uuid.UUID(k) for k in batch.maybe_stored],
                                   EPOCH + timedelta(microseconds=min(stamps)),
                                   EPOCH + timedelta(microseconds=max(stamps)))
        return {sample_id for (sample_id,) in found}

    def _insert(self, table: Table[Any], data: list[bytes], row_binary: bool = False) -> None:
        """JSON lines of the table's model, or RowBinary rows in its columns' order (what the
        compiled path writes: native.py holds its column list to the model)."""
        if not data:
            return
        started = time.perf_counter()
        if row_binary:
            self.store.insert_row_binary(table.name, table.columns, data)
        else:
            self.store.insert_json(table.name, data)
        metrics.INGEST_INSERT_SECONDS.labels(table.name).observe(time.perf_counter() - started)
        metrics.INGEST_ROWS.labels(table.name).inc(len(data))
