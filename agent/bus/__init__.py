"""The bus between the sidecar, ingest and the watchers. Two implementations behind one small
interface: Kafka for production, an in-process bus over a write-ahead log for the embedded
default. Same topics, same messages, same at-least-once contract: a publisher learns when the
bus holds a message (its Delivery), and a consumer commits an offset only after it has stored
what came before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pathlib import Path

    from watchkeeper.agent.config import KafkaConfig, WalConfig

TOPIC_SPANS = "wk.spans"
TOPIC_SAMPLES = "wk.samples"
# Samples the watchers flagged, with their reasons, for tools downstream (bus/flagged.py).
# Not "feedback": that is what end users say about an answer (the SDK's feedback(),
# the user_feedback table).
TOPIC_FLAGGED = "wk.flagged"
TOPIC_DEAD_LETTER = "wk.deadletter"
TOPICS = (TOPIC_SPANS, TOPIC_SAMPLES, TOPIC_FLAGGED, TOPIC_DEAD_LETTER)

# wk.spans carries OTLP protobuf; this header says which request type a message holds
# (absent means traces, as a stock Collector's Kafka exporter writes them).
SIGNAL_HEADER = "wk-signal"

Headers = tuple[tuple[str, bytes], ...]
TopicPartition = tuple[str, int]
Delivery = Future[None]
# Called (from poll, in the consumer's thread) with the partitions a consumer has lost: what it
# holds from them must be dropped, not stored, since their new owner replays them.
RevokeHook = Callable[[Iterable[TopicPartition]], None]


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = ()

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:  # a plain loop: a generator costs microseconds here
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Message:
    """A message to publish."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


class BusError(Exception):
    """The bus cannot take the message now; the caller should retry later (or spool)."""


_DELIVERED: Delivery = Future()
_DELIVERED.set_result(None)


def delivered() -> Delivery:
    """A delivery that already happened. One shared, completed future: nothing can change it,
    and making a future per message (a lock and a condition each) showed in ingest profiles."""
    return _DELIVERED


class Consumer(Protocol):
    def poll(self, max_records: int, timeout_s: float) -> list[Record]: ...

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit the next offset to read for each partition."""

    def lag(self) -> int: ...

    def replay_horizon(self) -> dict[TopicPartition, int]:
        """Per partition, the offset below which a record may already have been stored by an
        earlier owner (it was on the log when this consumer got the partition)."""

    def close(self) -> None: ...


class Bus(Protocol):
    def publish(self, topic: str, value: bytes, *, key: bytes | None = None,
                headers: Headers = ()) -> Delivery:
        """Hand a message over; the Delivery completes when the bus holds it, or fails.
        Raises BusError at once when the bus cannot even take it."""

    def publish_all(self, messages: Sequence[Message]) -> list[Delivery]:
        """Publish several messages (one OTLP export's); raises BusError when the bus cannot
        take them. The embedded bus takes all or none; Kafka may have taken some first."""

    def flush(self, timeout_s: float) -> None: ...

    def consumer(self, topic: str, group: str, on_revoke: RevokeHook | None = None
                 ) -> Consumer: ...

    def healthy(self) -> bool: ...

    def close(self) -> None: ...


def dead_letter(bus: Bus, record: Record, exc: Exception, value: bytes | None = None
                ) -> Delivery:
    """Set a message (or the part of it given as value) aside on wk.deadletter, with why
    (wk-error) and where it came from (wk-source) in its headers."""
    headers = (*record.headers, ("wk-error", f"{type(exc).__name__}: {exc}".encode()[:1024]),
               ("wk-source", f"{record.topic}/{record.partition}/{record.offset}".encode()))
    return bus.publish(TOPIC_DEAD_LETTER, record.value if value is None else value,
                       key=record.key, headers=headers)


def open_bus(url: str, kafka: KafkaConfig | None = None, wal_directory: Path | None = None,
             wal: WalConfig | None = None) -> Bus:
    """The embedded bus keeps its write-ahead log in wal_directory (without one, memory only:
    for tests and benchmarks of the stages around the bus)."""
    scheme = urlsplit(url).scheme
    if scheme in ("embedded", "memory"):
        from watchkeeper.agent.bus.embedded import EmbeddedBus

        return EmbeddedBus(wal_directory, wal)
    if scheme == "kafka":
        from watchkeeper.agent.bus.kafka import KafkaBus
        from watchkeeper.agent.config import KafkaConfig

        return KafkaBus(urlsplit(url).netloc, kafka or KafkaConfig())
    raise ValueError(f"bus {url!r}: unknown scheme {scheme!r}")
