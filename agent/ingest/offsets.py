"""Track offsets: what ingest may commit on wk.spans, and what a rebalance changes.

Why a part of its own: at-least-once delivery rests on one rule, that an offset is committed
only once everything read before it is stored, and on what a rebalance does to that. Here they
sit in one place instead of in the loop, the join window and the writer.

- A message counts as read once what it held is in the join window or the writer's batch
  (`read`), not when it is polled: a poll's later chunks are not decoded yet when the batch of an
  earlier one goes to the writer.
- As a batch goes to the writer, `stage` notes what storing it makes safe: per partition the
  next offset read, but never past an item the join window still holds (everything the window
  released before is in that batch or in one already stored). `commit_staged` commits that once
  the batch is stored, unless it is what was committed last (ingest flushes several times a
  second, idle or not). A batch that fails is not stored, and nothing is committed until a
  later batch, which carries its rows again, is.
- Rebalances happen inside `poll`. Revoked partitions are forgotten here, and `on_revoke`
  drops what the join window and the batch hold from them: their new owner reads them again
  from the last commit (decision 0004). The consumer notes a partition's replay horizon when
  it is assigned; `replayed` says whether an item lies below it, so that it may already have
  been stored by the previous owner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from watchkeeper.agent.bus import Bus, BusError, Record, TopicPartition
from watchkeeper.agent.ingest.decode import Ref

log = logging.getLogger(__name__)

NOWHERE = 1 << 62


class OffsetTracker:
    def __init__(self, bus: Bus, topic: str, group: str,
                 on_revoke: Callable[[set[TopicPartition]], None]) -> None:
        self._on_revoke = on_revoke
        self.consumer = bus.consumer(topic, group, on_revoke=self._revoked)
        self._read: dict[TopicPartition, int] = {}  # next offset after what has been taken in
        self._staged: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._horizon: dict[TopicPartition, int] = {}

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        records = self.consumer.poll(max_records, timeout_s)
        self._horizon = self.consumer.replay_horizon()  # as noted on (re)assignment
        return records

    def read(self, records: Iterable[Record]) -> None:
        """These messages' contents are in the join window or the batch."""
        read = self._read
        for record in records:
            read[(record.topic, record.partition)] = record.offset + 1

    def replayed(self, ref: Ref) -> bool:
        """Whether the item comes from the stretch of its partition that was on the log when
        this consumer got it: an earlier owner may have stored it without committing."""
        tp, offset = ref
        return offset < self._horizon.get(tp, 0)

    def safe(self, held: Iterable[Ref]) -> dict[TopicPartition, int]:
        """Per partition, the next offset read, but no further than the oldest item held."""
        low: dict[TopicPartition, int] = {}
        for tp, offset in held:
            if offset < low.get(tp, NOWHERE):
                low[tp] = offset
        return {tp: min(read, low.get(tp, NOWHERE)) for tp, read in self._read.items()}

    def stage(self, held: Iterable[Ref]) -> None:
        """A batch goes to the writer: note what its storing makes safe, given what is held
        still (the join window's items)."""
        self._staged = self.safe(held)

    def commit_staged(self) -> None:
        """The staged batch is stored: commit. A failed commit is retried with the next batch;
        what a replay brings back is deduplicated."""
        offsets, self._staged = self._staged, {}
        if not offsets or offsets == self._committed:
            return
        try:
            self.consumer.commit(offsets)
        except BusError as exc:
            log.warning("offset commit failed", extra={"error": str(exc)})
            return
        self._committed = offsets

    def lag(self) -> int:
        return self.consumer.lag()

    def close(self) -> None:
        self.consumer.close()

    def _revoked(self, partitions: Iterable[TopicPartition]) -> None:
        """Called from inside poll: the partitions went to another consumer."""
        lost = set(partitions)
        for tp in lost:
            self._read.pop(tp, None)
            self._staged.pop(tp, None)
            self._committed.pop(tp, None)
            self._horizon.pop(tp, None)
        self._on_revoke(lost)
