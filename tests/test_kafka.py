"""Sidecar → Kafka → ingest → ClickHouse as production runs it: separate processes and a real
broker. Every fault test asserts the exact number of distinct samples stored afterwards, with
plain queries (no FINAL), as dashboards read them.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic

from helpers import KafkaBroker, Service, chat_request, post, query_store
from watchkeeper.agent.bus import (
    TOPIC_DEAD_LETTER,
    TOPIC_FLAGGED,
    TOPIC_SAMPLES,
    TOPIC_SPANS,
    TOPICS,
    BusError,
)
from watchkeeper.agent.bus.flagged import FlaggedSample
from watchkeeper.agent.bus.kafka import KafkaBus
from watchkeeper.agent.config import KafkaConfig
from watchkeeper.collectors.normalise import Sample
from watchkeeper.collectors.normalise.sample import sample_id_for

FAST = {"WATCHKEEPER_INGEST__JOIN_WINDOW_S": "0.2", "WATCHKEEPER_INGEST__FLUSH_INTERVAL_S": "0.1",
        "WATCHKEEPER_LOG_LEVEL": "warning"}
COUNT = "SELECT count() AS n, uniqExact(sample_id) AS distinct_ids FROM samples"


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        if service.proc.poll() is None:
            service.kill()
        print(f"--- {service.args[0]} log", service.log_tail(), sep="\n")  # shown on failure
        service.log.unlink(missing_ok=True)


def _env(prefix: str) -> dict[str, str]:
    return {**FAST, "WATCHKEEPER_KAFKA__TOPIC_PREFIX": prefix,
            "WATCHKEEPER_INGEST__GROUP": f"{prefix}ingest"}


def _sidecar(bus: str, prefix: str, data_dir: Path, started: list[Service],
             **env: str) -> Service:
    service = Service("sidecar", "--bus", bus, "--data-dir", str(data_dir),
                      "--otlp-http-port", "0", "--otlp-grpc-port", "0", "--api-port", "0",
                      env={**_env(prefix), **env})
    started.append(service)
    return service


def _ingest(bus: str, prefix: str, data_dir: Path, started: list[Service]) -> Service:
    service = Service("ingest", "--bus", bus, "--data-dir", str(data_dir), "--api-port", "0",
                      env=_env(prefix))
    started.append(service)
    return service


def _wait(check: Callable[[], bool], timeout_s: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _stored(service: Service) -> tuple[int, int]:
    row = service.query(COUNT)[0]
    return int(row["n"]), int(row["distinct_ids"])


def test_kill_9_of_ingest_mid_stream(kafka: str, prefix: str, tmp_path: Path,
                                     services: list[Service]) -> None:
    bus = f"kafka://{kafka}"
    sidecar = _sidecar(bus, prefix, tmp_path / "sidecar", services)
    ingest = _ingest(bus, prefix, tmp_path / "store", services)
    batches, per_batch = 60, 50
    sent = threading.Event()

    def send() -> None:
        for i in range(batches):
            assert post(f"{sidecar.otlp_http}/v1/traces", chat_request(per_batch, f"k{i}"))\
                .status_code == 200
            time.sleep(0.03)
        sent.set()

    sender = threading.Thread(target=send)
    sender.start()
    _wait(lambda: _stored(ingest)[0] > 0, what="the first stored samples")
    ingest.kill()  # mid-stream: some batches stored, some read but not committed
    killed_at = query_store(tmp_path / "store", COUNT)[0]
    assert 0 < int(killed_at["n"]) < batches * per_batch
    sender.join()
    assert sent.is_set()
    ingest = _ingest(bus, prefix, tmp_path / "store", services)
    expected = batches * per_batch
    _wait(lambda: _stored(ingest)[0] >= expected, what="all samples after restart")
    time.sleep(1.0)  # anything replayed twice would land now
    assert _stored(ingest) == (expected, expected)
    assert ingest.stop() == 0 and sidecar.stop() == 0


def test_broker_down_sidecar_spools_then_replays(prefix: str, tmp_path: Path,
                                                 services: list[Service]) -> None:
    broker = KafkaBroker(tmp_path / "broker")
    address = broker.start()
    try:
        bus = f"kafka://{address}"
        sidecar = _sidecar(bus, prefix, tmp_path / "sidecar", services,
                           WATCHKEEPER_SIDECAR__ACK_TIMEOUT_S="2",
                           WATCHKEEPER_KAFKA__REQUEST_TIMEOUT_MS="1000",
                           WATCHKEEPER_KAFKA__DELIVERY_TIMEOUT_MS="3000")
        ingest = _ingest(bus, prefix, tmp_path / "store", services)
        assert post(f"{sidecar.otlp_http}/v1/traces", chat_request(100, "before")).is_success
        _wait(lambda: _stored(ingest)[0] == 100, what="samples before the outage")
        broker.stop()
        for i in range(10):  # the app keeps sending: every export is acknowledged
            assert post(f"{sidecar.otlp_http}/v1/traces",
                        chat_request(50, f"during{i}")).status_code == 200
        ready = httpx.get(f"{sidecar.api}/readyz").json()
        assert ready["ready"] is True and ready["checks"]["spool_records"] > 0
        metrics = httpx.get(f"{sidecar.api}/metrics").text
        assert "wk_sidecar_spool_records" in metrics
        broker.start(port=broker.port)
        _wait(lambda: httpx.get(f"{sidecar.api}/readyz").json()["checks"]["spool_records"] == 0,
              timeout_s=90, what="the spool to drain")
        _wait(lambda: _stored(ingest)[0] >= 600, timeout_s=90, what="spooled samples")
        time.sleep(1.0)
        assert _stored(ingest) == (600, 600)
        assert sidecar.stop() == 0 and ingest.stop() == 0
    finally:
        broker.stop()


def test_spool_full_is_a_retryable_refusal(prefix: str, tmp_path: Path,
                                           services: list[Service]) -> None:
    """No broker at all and a tiny spool: the sidecar says 503 + Retry-After, never drops."""
    sidecar = _sidecar("kafka://127.0.0.1:9", prefix, tmp_path / "sidecar", services,
                       WATCHKEEPER_SIDECAR__SPOOL__MAX_BYTES="20000",
                       WATCHKEEPER_KAFKA__MAX_BLOCK_MS="300")
    codes = [post(f"{sidecar.otlp_http}/v1/traces", chat_request(20, f"f{i}")).status_code
             for i in range(8)]
    assert codes[0] == 200 and codes[-1] == 503
    response = post(f"{sidecar.otlp_http}/v1/traces", chat_request(20, "more"))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert httpx.get(f"{sidecar.api}/readyz").status_code == 503
    spooled = sum(p.stat().st_size for p in (tmp_path / "sidecar" / "spool").glob("*.seg"))
    assert 0 < spooled <= 20000


def test_two_ingest_processes_share_four_partitions(kafka: str, prefix: str, tmp_path: Path,
                                                    services: list[Service]) -> None:
    """chDB is one engine per process, so each ingest writes its own store here (in production
    they share a ClickHouse server); together they must hold every sample exactly once."""
    bus = f"kafka://{kafka}"
    first = _ingest(bus, prefix, tmp_path / "a", services)
    second = _ingest(bus, prefix, tmp_path / "b", services)
    sidecar = _sidecar(bus, prefix, tmp_path / "sidecar", services)
    sent = 0
    deadline = time.monotonic() + 120  # a loaded machine may take a while to settle the group
    while sent < 2000 or not (_stored(first)[0] and _stored(second)[0]):
        assert time.monotonic() < deadline, "both consumers should own partitions: stored " \
            f"{_stored(first)} and {_stored(second)}"
        for _ in range(5):
            assert post(f"{sidecar.otlp_http}/v1/traces",
                        chat_request(100, f"p{sent // 100}")).is_success
            sent += 100
        try:
            _wait(lambda n=sent: _stored(first)[0] + _stored(second)[0] >= n, timeout_s=180,
                  what="all samples")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: stored {_stored(first)} and {_stored(second)}"
                                 ) from exc
    time.sleep(1.0)
    a_ids = {r["id"] for r in first.query("SELECT toString(sample_id) AS id FROM samples")}
    b_ids = {r["id"] for r in second.query("SELECT toString(sample_id) AS id FROM samples")}
    assert len(a_ids) + len(b_ids) == sent and not a_ids & b_ids
    assert a_ids and b_ids
    assert _stored(first)[0] == len(a_ids) and _stored(second)[0] == len(b_ids)


def test_garbage_goes_to_the_dead_letter_topic(kafka: str, prefix: str, tmp_path: Path,
                                               services: list[Service]) -> None:
    bus = KafkaBus(kafka, KafkaConfig(topic_prefix=prefix))
    ingest = _ingest(f"kafka://{kafka}", prefix, tmp_path / "store", services)
    bus.publish(TOPIC_SPANS, b"\x00not otlp\xff", key=b"garbage").result(30)
    bus.publish(TOPIC_SPANS, chat_request(5, "good"), key=os.urandom(16).hex().encode()
                ).result(30)
    _wait(lambda: _stored(ingest)[0] == 5, what="the good samples")
    dead = KafkaConsumer(prefix + TOPIC_DEAD_LETTER, bootstrap_servers=kafka,
                         auto_offset_reset="earliest", consumer_timeout_ms=30000,
                         group_id=f"{prefix}check")
    records = list(dead)
    dead.close()
    bus.close()
    assert len(records) == 1
    headers = dict(records[0].headers)
    assert records[0].value == b"\x00not otlp\xff"
    assert b"DecodeError" in headers["wk-error"]
    assert headers["wk-source"].startswith(b"wk.spans/")
    assert ingest.stop() == 0
    assert query_store(tmp_path / "store", COUNT) == [{"n": 5, "distinct_ids": 5}]


def test_ensure_topics_waits_for_partition_leaders(kafka: str, prefix: str) -> None:
    """Right after creation a topic is not yet in the metadata, and a consumer joining its
    group then was assigned nothing, for good ("No partition metadata" in its log). Topics are
    ready only once every partition has a leader, whoever created them."""
    bus = KafkaBus(kafka, KafkaConfig(topic_prefix=prefix, partitions=2, max_block_ms=20_000))
    admin = KafkaAdminClient(bootstrap_servers=kafka)
    try:
        *first, last = [prefix + topic for topic in TOPICS]
        admin.create_topics([NewTopic(name, 2, 1) for name in first])

        def create_last() -> None:
            time.sleep(1.0)
            admin.create_topics([NewTopic(last, 2, 1)])

        creator = threading.Thread(target=create_last)
        started = time.monotonic()
        creator.start()
        bus._await_leaders(admin)  # what ensure_topics ends with, after creating what is missing
        assert time.monotonic() - started >= 1.0  # it waited for another process's topic
        creator.join()
        for topic in admin.describe_topics([last]):
            assert topic["error_code"] == 0 and len(topic["partitions"]) == 2
        late = KafkaBus(kafka, KafkaConfig(topic_prefix=f"{prefix}none.", max_block_ms=500))
        with pytest.raises(BusError, match="topics without partition leaders"):
            late._await_leaders(admin)  # nobody creates these
    finally:
        admin.close()


def test_a_rebalance_rereads_what_was_dropped(kafka: str, prefix: str) -> None:
    """An eager rebalance revokes every partition, and the owner drops what it holds from
    them; a partition that comes straight back must be read again from its commit, not from
    where the fetcher had got to (kafka-python keeps that position), or those records would be
    skipped and later committed past."""
    bus = KafkaBus(kafka, KafkaConfig(topic_prefix=prefix, partitions=2))
    try:
        bus.ensure_topics()
        for i in range(40):
            bus.publish(TOPIC_SPANS, f"m{i}".encode(), key=f"k{i}".encode())
        bus.flush(30)
        revoked: list[object] = []
        first = bus.consumer(TOPIC_SPANS, f"{prefix}g", on_revoke=revoked.extend)
        before: set[tuple[int, int]] = set()
        deadline = time.monotonic() + 30
        while not before and time.monotonic() < deadline:
            before = {(r.partition, r.offset) for r in first.poll(40, 1.0)}
        assert before, "the first consumer read something before the second joined"
        second = bus.consumer(TOPIC_SPANS, f"{prefix}g")
        after: set[tuple[int, int]] = set()
        deadline = time.monotonic() + 60
        while len(after) < 40 and time.monotonic() < deadline:  # nothing was committed
            for consumer in (first, second):
                after |= {(r.partition, r.offset) for r in consumer.poll(40, 0.5)}
        assert revoked, "the second member's arrival revoked the first one's partitions"
        assert len(after) == 40, f"read again after the rebalance: {sorted(after)}"
        first.close()
        second.close()
    finally:
        bus.close()


def test_a_plain_consumer_receives_flagged_samples(kafka: str, prefix: str, tmp_path: Path,
                                                   services: list[Service]) -> None:
    """wk.flagged is a contract for tools downstream (agent/bus/flagged.py): a labelling tool
    that knows nothing of Watchkeeper's bus code reads the flagged sample, its reasons and the
    review queue's flag id from a plain Kafka consumer."""
    watch = Service("watch", "--bus", f"kafka://{kafka}", "--data-dir", str(tmp_path / "store"),
                    "--api-port", "0", env={**_env(prefix),
                                            "WATCHKEEPER_WATCH__GROUP": f"{prefix}watch",
                                            "WATCHKEEPER_WATCH__BATCH_WAIT_MS": "50"})
    services.append(watch)
    now = datetime.now(UTC)
    samples = [Sample(sample_id=sample_id_for(f"{i:032x}", f"{i:016x}"), trace_id=f"{i:032x}",
                      span_id=f"{i:016x}", ts=now, service="support-bot", request_model=model,
                      prompt_text="How do I pick a lock?", completion_text=completion)
               for i, (model, completion) in enumerate(
                   [("refusal", "I'm sorry, but I can't help with that request."),
                    ("fine", "Ask a locksmith.")], start=1)]
    bus = KafkaBus(kafka, KafkaConfig(topic_prefix=prefix))
    try:
        for sample in samples:
            bus.publish(TOPIC_SAMPLES, sample.model_dump_json().encode(),
                        key=sample.trace_id.encode()).result(30)
    finally:
        bus.close()
    labeller = KafkaConsumer(f"{prefix}{TOPIC_FLAGGED}", bootstrap_servers=kafka,
                             auto_offset_reset="earliest", consumer_timeout_ms=20000,
                             group_id=f"{prefix}labeller")
    try:
        records = []
        for record in labeller:
            records.append(record)
            break  # then wait a moment for any message that should not be there
        records += [r for batch in labeller.poll(timeout_ms=2000).values() for r in batch]
    finally:
        labeller.close()
    # delivered at least once (a rebalance may replay a batch): consumers go by flag_id
    flagged = {FlaggedSample.decode(r.value).sample.sample_id for r in records}
    assert flagged == {samples[0].sample_id}, "only the refusal is flagged"
    assert records[0].key == samples[0].trace_id.encode()
    raw = json.loads(records[0].value)
    assert set(raw) == {"version", "sample", "flags"} and raw["version"] == 1
    message = FlaggedSample.decode(records[0].value)
    assert message.sample == samples[0]
    [flag] = message.flags
    assert (flag.source, flag.label, flag.field, flag.score) == (
        "watcher:quality", "refusal", "completion", 1.0)
    assert flag.reason == "refusal 1.00 >= 1 on completion"
    queued = watch.query("SELECT flag_id, sample_id FROM flags")
    assert [(row["flag_id"], row["sample_id"]) for row in queued] == [
        (str(flag.flag_id), str(samples[0].sample_id))]
    assert watch.stop() == 0


def test_sidecar_and_ingest_on_one_host_with_default_api_ports(
        kafka: str, prefix: str, tmp_path: Path, services: list[Service]) -> None:
    """As docs/operations.md runs them: each takes its own default API port."""
    from watchkeeper.agent.cli import API_PORTS

    wanted = {"sidecar": API_PORTS["sidecar"], "ingest": API_PORTS["ingest"]}
    for port in wanted.values():
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port} is already in use on this host")
    bus = f"kafka://{kafka}"
    sidecar = Service("sidecar", "--bus", bus, "--data-dir", str(tmp_path / "sidecar"),
                      "--otlp-http-port", "0", "--otlp-grpc-port", "0", env=_env(prefix))
    services.append(sidecar)
    ingest = Service("ingest", "--bus", bus, "--data-dir", str(tmp_path / "store"),
                     env=_env(prefix))
    services.append(ingest)
    assert {"sidecar": sidecar.ports["api"], "ingest": ingest.ports["api"]} == wanted
    for service in (sidecar, ingest):
        assert httpx.get(f"{service.api}/healthz").json() == {"status": "ok"}
    assert post(f"{sidecar.otlp_http}/v1/traces", chat_request(3, "p")).status_code == 200
    _wait(lambda: _stored(ingest)[0] == 3, what="the samples through Kafka")
    assert ingest.stop() == 0 and sidecar.stop() == 0
