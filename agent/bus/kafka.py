"""The production bus: Apache Kafka through kafka-python. Idempotent producer with acks=all,
topics created with the configured partitions when missing, messages keyed by trace id, and a
consumer that commits only what its caller says it has stored.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import NewTopic
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from watchkeeper.agent.bus import (
    TOPIC_SPANS,
    TOPICS,
    BusError,
    Delivery,
    Headers,
    Message,
    Record,
    RevokeHook,
    TopicPartition,
)
from watchkeeper.agent.config import KafkaConfig

log = logging.getLogger(__name__)


class KafkaBus:
    def __init__(self, bootstrap: str, config: KafkaConfig) -> None:
        self.bootstrap = bootstrap.split(",")
        self.config = config
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._topics_ready = False

    # -- topics -------------------------------------------------------------------------------
    def ensure_topics(self) -> None:
        """Create the Watchkeeper topics that are missing (idempotent, safe to race)."""
        if self._topics_ready:
            return
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                 bootstrap_timeout_ms=self.config.max_block_ms,
                                 **self.config.client_settings())
        try:
            existing = set(admin.list_topics())
            missing = [NewTopic(self.physical(name), self.config.partitions,
                                self.config.replication_factor,
                                topic_configs={"max.message.bytes":
                                               str(self.config.max_message_bytes)})
                       for name in TOPICS if self.physical(name) not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):  # another process won
                    admin.create_topics(missing)
                log.info("topics created", extra={"topics": [t.name for t in missing]})
            self._await_leaders(admin)
        finally:
            admin.close()
        self._topics_ready = True

    def _await_leaders(self, admin: KafkaAdminClient) -> None:
        """A new topic is in the metadata only a moment after it is created (here or by another
        process). A consumer that joins its group before then is assigned nothing, and the
        group does not rebalance when the partitions appear: wait until each has a leader."""
        names = [self.physical(name) for name in TOPICS]
        deadline = time.monotonic() + self.config.max_block_ms / 1000
        while True:
            pending = [t["name"] for t in admin.describe_topics(names)
                       if t["error_code"] != 0 or not t["partitions"]
                       or any(p["leader_id"] < 0 for p in t["partitions"])]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise BusError(f"topics without partition leaders: {', '.join(sorted(pending))}")
            time.sleep(0.05)

    def physical(self, topic: str) -> str:
        return self.config.topic_prefix + topic

    def logical(self, topic: str) -> str:
        return topic.removeprefix(self.config.topic_prefix)

    # -- producing ----------------------------------------------------------------------------
    def _get_producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self.ensure_topics()  # topics are never auto-created: partitions are config
                c = self.config
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                    compression_type=None if c.compression == "none" else c.compression,
                    linger_ms=c.linger_ms, batch_size=c.batch_bytes,
                    max_request_size=c.max_message_bytes,
                    delivery_timeout_ms=c.delivery_timeout_ms, max_block_ms=c.max_block_ms,
                    allow_auto_create_topics=False, bootstrap_timeout_ms=c.max_block_ms,
                    **c.client_settings())
            return self._producer

    def publish(self, topic: str, value: bytes, *, key: bytes | None = None,
                headers: Headers = ()) -> Delivery:
        delivery: Delivery = Delivery()
        try:
            producer = self._get_producer()
            sent = producer.send(self.physical(topic), value=value, key=key,
                                 headers=list(headers))
        except KafkaError as exc:  # no metadata within max_block_ms, buffer full, too large…
            raise BusError(f"{type(exc).__name__}: {exc}") from exc
        sent.add_callback(lambda _: delivery.set_result(None))
        sent.add_errback(lambda exc: delivery.set_exception(BusError(f"{exc}")))
        return delivery

    def publish_all(self, messages: Sequence[Message]) -> list[Delivery]:
        """One send each: a refusal midway leaves the earlier ones sent (the sidecar then
        spools them all, and its replay may publish those twice)."""
        return [self.publish(m.topic, m.value, key=m.key, headers=m.headers) for m in messages]

    def flush(self, timeout_s: float) -> None:
        if self._producer is not None:
            try:
                self._producer.flush(timeout=timeout_s)
            except KafkaError as exc:
                raise BusError(f"{type(exc).__name__}: {exc}") from exc

    def healthy(self) -> bool:
        """Whether a broker answers now (a cheap metadata round trip)."""
        try:
            producer = self._get_producer()
            return bool(producer.partitions_for(self.physical(TOPIC_SPANS)))
        except KafkaError:
            return False

    # -- consuming ----------------------------------------------------------------------------
    def consumer(self, topic: str, group: str, on_revoke: RevokeHook | None = None
                 ) -> KafkaBusConsumer:
        self.ensure_topics()
        return KafkaBusConsumer(self, topic, group, on_revoke)

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                try:
                    self._producer.close(timeout=10)
                except KafkaError as exc:
                    log.warning("producer close failed", extra={"error": str(exc)})
                self._producer = None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs on the client's IO thread, where no blocking client call is allowed: it only notes
    what changed, and the consumer acts on it in the caller's thread after poll returns."""

    def __init__(self, owner: KafkaBusConsumer) -> None:
        self.owner = owner

    def on_partitions_revoked(self, revoked: Any) -> None:
        with self.owner.lock:
            self.owner.revoked |= set(revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        with self.owner.lock:
            self.owner.assigned |= set(assigned)


class KafkaBusConsumer:
    def __init__(self, bus: KafkaBus, topic: str, group: str,
                 on_revoke: RevokeHook | None) -> None:
        c = bus.config
        self.on_revoke = on_revoke
        self.lock = threading.Lock()
        self.revoked: set[KafkaTopicPartition] = set()
        self.assigned: set[KafkaTopicPartition] = set()
        self._bus = bus
        self._horizon: dict[TopicPartition, int] = {}
        self._consumer = KafkaConsumer(
            bootstrap_servers=bus.bootstrap, group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=c.session_timeout_ms,
            max_poll_interval_ms=c.max_poll_interval_ms,
            max_partition_fetch_bytes=c.max_message_bytes, **c.client_settings())
        self._await_metadata(bus.physical(topic), c.max_block_ms / 1000)
        self._consumer.subscribe([bus.physical(topic)], listener=_Listener(self))

    def _await_metadata(self, topic: str, timeout_s: float) -> None:
        """Join the group only once this client's own metadata has the topic's partitions:
        the admin client seeing them is not enough, and a member that joins without them is
        assigned nothing until its metadata next refreshes (minutes)."""
        deadline = time.monotonic() + timeout_s
        while not self._consumer.partitions_for_topic(topic):
            if time.monotonic() > deadline:
                raise BusError(f"topic {topic} has no partitions in this client's metadata")
            time.sleep(0.05)

    def logical(self, topic: str) -> str:
        return self._bus.logical(topic)

    def _settle_rebalance(self) -> set[KafkaTopicPartition]:
        """Act on what the listener noted; returns the partitions revoked or (re)assigned since
        the last poll, whose records from that poll are to be read again from the commit.

        The caller drops everything it holds from a revoked partition. kafka-python keeps the
        fetch position of a partition that comes straight back to the same member (an eager
        rebalance revokes them all first), so such a partition is sought back to its committed
        offset: what was dropped is read again rather than skipped and later committed past."""
        with self.lock:
            revoked, self.revoked = self.revoked, set()
            assigned, self.assigned = self.assigned, set()
        if revoked and self.on_revoke is not None:
            self.on_revoke([(self.logical(tp.topic), tp.partition) for tp in revoked])
        for tp in revoked:
            self._horizon.pop((self.logical(tp.topic), tp.partition), None)
        if assigned:
            for tp in assigned:
                committed = self._consumer.committed(tp)
                if committed is None:
                    self._consumer.seek_to_beginning(tp)
                else:
                    self._consumer.seek(tp, committed)
            # Everything on the log when a partition arrives may have been stored by its
            # previous owner before that owner could commit: remember where that stretch ends.
            for tp, end in self._consumer.end_offsets(list(assigned)).items():
                self._horizon[(self.logical(tp.topic), tp.partition)] = int(end)
        return revoked | assigned

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        moved = self._settle_rebalance()
        # Records fetched around a rebalance belong to whoever reads the partition from its
        # committed offset now: its new owner, or this consumer again after the seek.
        return [Record(self.logical(m.topic), m.partition, m.offset, m.key, m.value,
                       tuple((k, v) for k, v in (m.headers or [])))
                for tp, messages in batches.items() if tp not in moved for m in messages]

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        owned = {(self.logical(tp.topic), tp.partition) for tp in self._consumer.assignment()}
        commit = {KafkaTopicPartition(self._bus.physical(t), p): OffsetAndMetadata(o, "", -1)
                  for (t, p), o in offsets.items() if (t, p) in owned}
        if commit:
            try:
                self._consumer.commit(commit)
            except KafkaError as exc:
                raise BusError(f"commit failed: {exc}") from exc

    def lag(self) -> int:
        assignment = list(self._consumer.assignment())
        if not assignment:
            return 0
        ends = self._consumer.end_offsets(assignment)
        total = 0
        for tp in assignment:
            committed = self._consumer.committed(tp) or 0
            total += max(0, int(ends[tp]) - int(committed))
        return total

    def replay_horizon(self) -> dict[TopicPartition, int]:
        return dict(self._horizon)

    def close(self) -> None:
        """Leave the group now, so that its partitions move without waiting for a timeout."""
        try:
            self._consumer.close(autocommit=False)
        except KafkaError as exc:
            log.warning("consumer close failed", extra={"error": str(exc)})
