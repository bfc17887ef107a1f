"""The in-process bus of the embedded default: one partition per topic, consumer groups with
committed offsets, and a bounded backlog that pushes back (BusError) instead of growing.
"""

from __future__ import annotations

import threading
from collections import deque

from watchkeeper.agent.bus import (
    BusError,
    Delivery,
    Headers,
    Record,
    RevokeHook,
    TopicPartition,
    delivered,
)


class _Topic:
    def __init__(self, name: str) -> None:
        self.name = name
        self.records: deque[Record] = deque()
        self.base = 0  # offset of records[0]
        self.end = 0  # next offset to assign
        self.committed: dict[str, int] = {}

    def trim(self) -> None:
        """Drop what every group has committed: memory stays bounded by the slowest group."""
        if not self.committed:
            return
        low = min(self.committed.values())
        while self.records and self.base < low:
            self.records.popleft()
            self.base += 1


class MemoryBus:
    def __init__(self, max_backlog: int = 100_000) -> None:
        self._topics: dict[str, _Topic] = {}
        self._cond = threading.Condition()
        self._max_backlog = max_backlog
        self._closed = False

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic(name)
        return topic

    def publish(self, topic: str, value: bytes, *, key: bytes | None = None,
                headers: Headers = ()) -> Delivery:
        with self._cond:
            if self._closed:
                raise BusError("bus closed")
            t = self._topic(topic)
            if len(t.records) >= self._max_backlog:
                if t.committed:  # a consumer will read it: push back rather than lose it
                    raise BusError(f"{topic}: backlog of {len(t.records)} messages is full")
                t.records.popleft()  # nobody subscribed: keep the newest, like retention
                t.base += 1
            t.records.append(Record(topic, 0, t.end, key, value, headers))
            t.end += 1
            self._cond.notify_all()
        return delivered()

    def flush(self, timeout_s: float) -> None:
        """Publishing is synchronous here: nothing is buffered."""

    def consumer(self, topic: str, group: str, on_revoke: RevokeHook | None = None
                 ) -> MemoryConsumer:
        """One partition, never reassigned: on_revoke is never called."""
        with self._cond:
            t = self._topic(topic)
            t.committed.setdefault(group, t.base)
            return MemoryConsumer(self, t, group)

    def healthy(self) -> bool:
        return not self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def backlog(self, topic: str) -> int:
        with self._cond:
            return len(self._topic(topic).records)


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, topic: _Topic, group: str) -> None:
        self._bus = bus
        self._topic = topic
        self._group = group
        self._position = topic.committed[group]

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        t = self._topic
        with self._bus._cond:
            if self._position >= t.end and not self._bus._closed:
                self._bus._cond.wait(timeout_s)
            start = max(self._position, t.base)
            stop = min(t.end, start + max_records)
            batch = [t.records[i - t.base] for i in range(start, stop)]
            self._position = stop
            return batch

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        with self._bus._cond:
            for (topic, _), offset in offsets.items():
                if topic == self._topic.name:
                    current = self._topic.committed.get(self._group, 0)
                    self._topic.committed[self._group] = max(current, offset)
            self._topic.trim()

    def lag(self) -> int:
        with self._bus._cond:
            return self._topic.end - self._topic.committed.get(self._group, 0)

    def replay_horizon(self) -> dict[TopicPartition, int]:
        """The log lives and dies with this process: nothing read here was stored before."""
        return {}

    def close(self) -> None:
        """Nothing to release: the position lives with the bus."""
