"""The bus between the sidecar, ingest and the watchers. Two implementations behind one small
interface: Kafka for production, an in-process log for the embedded default. Same topics, same
messages, same at-least-once contract (a consumer commits the offset after it has stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

TOPIC_SPANS = "wk.spans"
TOPIC_SAMPLES = "wk.samples"
TOPIC_FEEDBACK = "wk.feedback"
TOPIC_DEAD_LETTER = "wk.deadletter"

# wk.spans carries OTLP protobuf; this header says which request type a message holds
# (absent means traces, as a stock Collector's Kafka exporter writes them).
SIGNAL_HEADER = "wk-signal"

Headers = tuple[tuple[str, bytes], ...]
TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = ()

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


class BusError(Exception):
    """The bus cannot take the message now; the caller should retry later (or spool)."""


class Consumer(Protocol):
    def poll(self, max_records: int, timeout_s: float) -> list[Record]: ...

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit the next offset to read for each partition."""

    def lag(self) -> int: ...

    def close(self) -> None: ...


class Bus(Protocol):
    def publish(self, topic: str, value: bytes, *, key: bytes | None = None,
                headers: Headers = ()) -> None:
        """Hand a message to the bus; raises BusError when it cannot take it now."""

    def flush(self, timeout_s: float) -> None: ...

    def consumer(self, topic: str, group: str) -> Consumer: ...

    def close(self) -> None: ...


def open_bus(url: str) -> Bus:
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from watchkeeper.agent.bus.memory import MemoryBus

        return MemoryBus()
    raise ValueError(f"bus {url!r}: the {scheme} bus is not available in this build")
