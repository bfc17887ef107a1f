"""The bus of the embedded default (`up`): one partition per topic, consumer groups with
committed offsets, kept in memory for its consumers and, with a write-ahead log (wal.py), on
disk before any publisher hears that the bus holds a message.

With the log, a consumer sees a message only once it is durable, committed offsets are kept
in a file beside the log, and a restart (even after `kill -9` or a power cut) reads back every
message some live consumer had not committed. Those are below the consumer's replay horizon:
a consumer may have stored them before the crash, and checks (decision 0004).

Without a log (`EmbeddedBus()`), it is an in-memory bus for tests and benchmarks of the stages
around it; the runtime always gives it one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path

from watchkeeper.agent.bus import (
    TOPIC_SPANS,
    BusError,
    Delivery,
    Headers,
    Message,
    Record,
    RevokeHook,
    TopicPartition,
    delivered,
)
from watchkeeper.agent.bus.wal import WriteAheadLog
from watchkeeper.agent.config import WalConfig

log = logging.getLogger(__name__)
OFFSETS_FILE = "offsets.json"
COMPACT_AT = 4096  # consumed records at the front of a topic's list before it is compacted
# Only new data is refused when the log is full. What stages derive from data already accepted
# (wk.samples from wk.spans, …) is always written: refusing it would stall the very consumers
# whose commits free the log.
CAPPED_TOPICS = frozenset({TOPIC_SPANS})


def _offset(record: Record) -> int:
    return record.offset


class _Topic:
    def __init__(self, name: str) -> None:
        self.name = name
        self.records: list[Record] = []  # in offset order; offsets may have gaps after a cut
        self.head = 0  # index of the first record kept
        self.end = 0  # next offset to assign
        self.visible = 0  # offsets below are durable: consumers may read them
        self.recovered_end = 0  # end as found on disk at start
        self.committed: dict[str, int] = {}  # group -> next offset to read
        self.live: set[str] = set()  # groups with a consumer in this process

    def __len__(self) -> int:
        return len(self.records) - self.head

    def index(self, offset: int) -> int:
        return bisect_left(self.records, offset, lo=self.head, key=_offset)

    def low_water(self) -> int:
        """Offsets below are done with: committed by every live group; with none, all."""
        if not self.live:
            return self.end
        return min(self.committed.get(g, 0) for g in self.live)

    def trim(self, keep_newest: int | None = None) -> None:
        """Drop from memory what the live groups have committed (or, with no group, all but
        the newest `keep_newest`, like a retention limit)."""
        if self.live:
            self.head = self.index(self.low_water())
        elif keep_newest is not None and len(self) > keep_newest:
            self.head = len(self.records) - keep_newest
        if self.head >= COMPACT_AT and self.head * 2 >= len(self.records):
            del self.records[:self.head]
            self.head = 0


class EmbeddedBus:
    def __init__(self, wal_directory: Path | None = None, wal: WalConfig | None = None,
                 max_backlog: int = 100_000) -> None:
        self._topics: dict[str, _Topic] = {}
        self._cond = threading.Condition()
        self._committing = threading.Lock()
        self._max_backlog = max_backlog
        self._closed = False
        self._refusing = False  # the log was full at the last capped publish
        self._offsets_path: Path | None = None
        self._wal: WriteAheadLog | None = None
        if wal_directory is not None:
            self._offsets_path = wal_directory / OFFSETS_FILE
            self._wal = WriteAheadLog(wal_directory, wal or WalConfig(), self._durable,
                                      self._failed)
            self._load(self._wal.recovered)

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic(name)
        return topic

    def _load(self, recovered: list[Record]) -> None:
        """Rebuild the topics from the log and the committed offsets."""
        assert self._offsets_path is not None
        committed: dict[str, dict[str, int]] = {}
        try:
            committed = json.loads(self._offsets_path.read_text()) \
                if self._offsets_path.exists() else {}
        except (OSError, ValueError) as exc:  # read all of the log again: the guards dedup
            log.warning("offsets file unreadable, replaying the whole log",
                        extra={"path": str(self._offsets_path), "error": str(exc)})
        for name, groups in committed.items():
            self._topic(name).committed.update(groups)
        for record in recovered:
            t = self._topic(record.topic)
            t.records.append(record)
            t.end = t.visible = t.recovered_end = record.offset + 1
        for t in self._topics.values():
            t.end = t.visible = t.recovered_end = max(
                t.end, max(t.committed.values(), default=0))
            low = min(t.committed.values(), default=0)
            t.head = t.index(low)
            if t.records:
                log.info("bus topic recovered", extra={
                    "topic": t.name, "uncommitted": len(t), "committed": t.committed})

    # -- publishing -------------------------------------------------------------------------
    def publish(self, topic: str, value: bytes, *, key: bytes | None = None,
                headers: Headers = ()) -> Delivery:
        return self.publish_all([Message(topic, key, value, headers)])[0]

    def publish_all(self, messages: Sequence[Message]) -> list[Delivery]:
        """All or none: an export the full log refuses leaves nothing behind to repeat when
        the exporter retries it."""
        with self._cond:
            if self._closed:
                raise BusError("bus closed")
            if self._wal is None:
                return [self._publish_in_memory(self._topic(m.topic), m.value, m.key, m.headers)
                        for m in messages]
            capped = sum(len(m.value) for m in messages if m.topic in CAPPED_TOPICS)
            if capped:
                self._refusing = self._wal.full(capped)
                if self._refusing:
                    raise BusError(f"write-ahead log full ({self._wal.size} of "
                                   f"{self._wal.config.max_bytes} bytes): consumers are behind")
            deliveries = []
            for m in messages:
                t = self._topic(m.topic)
                record = Record(m.topic, 0, t.end, m.key, m.value, m.headers)
                t.records.append(record)
                t.end += 1
                deliveries.append(self._wal.append(record))  # under the lock: offset order
            return deliveries

    def _publish_in_memory(self, t: _Topic, value: bytes, key: bytes | None,
                           headers: Headers) -> Delivery:
        if len(t) >= self._max_backlog:
            if t.live:  # a consumer will read it: push back rather than lose it
                raise BusError(f"{t.name}: backlog of {len(t)} messages is full")
            t.head += 1  # nobody subscribed: keep the newest, like retention
        t.records.append(Record(t.name, 0, t.end, key, value, headers))
        t.end += 1
        t.visible = t.end
        self._cond.notify_all()
        return delivered()

    def _durable(self, records: list[Record]) -> None:
        """From the log's syncer: these are on disk, consumers may read them."""
        with self._cond:
            for record in records:
                t = self._topics[record.topic]
                t.visible = max(t.visible, record.offset + 1)
            self._cond.notify_all()

    def _failed(self, records: list[Record]) -> None:
        """From the log's syncer: these could not be written; their publishers hear so, and
        nobody reads them."""
        lost = {(r.topic, r.offset) for r in records}
        with self._cond:
            for name in {r.topic for r in records}:
                t = self._topics[name]
                t.records[t.head:] = [r for r in t.records[t.head:]
                                      if (name, r.offset) not in lost]

    def flush(self, timeout_s: float) -> None:
        """Publishing completes its own deliveries: nothing waits to be sent."""

    # -- consuming --------------------------------------------------------------------------
    def consumer(self, topic: str, group: str, on_revoke: RevokeHook | None = None
                 ) -> EmbeddedConsumer:
        """One partition, never reassigned: on_revoke is never called."""
        with self._cond:
            t = self._topic(topic)
            t.live.add(group)
            t.committed.setdefault(group, t.records[t.head].offset if len(t) else t.end)
            return EmbeddedConsumer(self, t, group)

    def commit(self, t: _Topic, group: str, offset: int) -> None:
        """Record the commit, write the offsets file, then delete what no consumer needs. One
        committer at a time (ingest and watch commit from their own threads): each writes the
        newest offsets, and the file is never older than a segment already deleted."""
        with self._committing:
            with self._cond:
                if offset <= t.committed.get(group, 0):
                    return
                t.committed[group] = offset
                t.trim(self._max_backlog)
                committed = {name: dict(topic.committed)
                             for name, topic in self._topics.items() if topic.committed}
                low = {name: topic.low_water() for name, topic in self._topics.items()}
            if self._wal is None or self._offsets_path is None:
                return
            _write_atomically(self._offsets_path, json.dumps(committed).encode())
            if self._wal.release(low) and self._refusing:
                self._refusing = False
                log.info("write-ahead log has room again", extra={"bytes": self._wal.size})

    def healthy(self) -> bool:
        """False once closed, and from a publish the full log refused until room is made."""
        return not self._closed and not self._refusing

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._wal is not None:
            self._wal.close()

    def backlog(self, topic: str) -> int:
        with self._cond:
            return len(self._topic(topic))

    @property
    def wal(self) -> WriteAheadLog | None:
        return self._wal


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file, sync it, rename it over the old one, sync the directory:
    after a crash the file is the old one or the new one, whole."""
    tmp = path.with_suffix(".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EmbeddedConsumer:
    def __init__(self, bus: EmbeddedBus, topic: _Topic, group: str) -> None:
        self._bus = bus
        self._topic = topic
        self._group = group
        self._position = topic.committed[group]
        # What was on disk beyond this group's commit at start: it may have been stored by
        # the run that crashed.
        self._horizon = topic.recovered_end if topic.recovered_end > self._position else 0

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        t = self._topic
        with self._bus._cond:
            if self._position >= t.visible and not self._bus._closed:
                self._bus._cond.wait(timeout_s)
            batch: list[Record] = []
            for i in range(t.index(self._position), len(t.records)):
                record = t.records[i]
                if record.offset >= t.visible or len(batch) >= max_records:
                    break
                batch.append(record)
            if batch:
                self._position = batch[-1].offset + 1
            return batch

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for (topic, _), offset in offsets.items():
            if topic == self._topic.name:
                self._bus.commit(self._topic, self._group, offset)

    def lag(self) -> int:
        with self._bus._cond:
            return self._topic.end - self._topic.committed.get(self._group, 0)

    def replay_horizon(self) -> dict[TopicPartition, int]:
        return {(self._topic.name, 0): self._horizon} if self._horizon else {}

    def close(self) -> None:
        """Nothing to release: the position lives with the bus."""
