"""The embedded bus's write-ahead log on real files: group commit, recovery of what no consumer
committed, torn and corrupt tails, truncation of consumed segments, the size cap."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from watchkeeper.agent import metrics
from watchkeeper.agent.bus import TOPIC_SAMPLES, TOPIC_SPANS, BusError
from watchkeeper.agent.bus.embedded import EmbeddedBus
from watchkeeper.agent.bus.wal import SUFFIX
from watchkeeper.agent.config import WalConfig

SMALL = WalConfig(segment_bytes=64 * 1024, max_bytes=1024 * 1024)


def _sample(name: str) -> float:
    value = metrics.WAL_SYNC_SECONDS.collect()[0].samples
    return next(s.value for s in value if s.name.endswith(name))


def _publish(bus: EmbeddedBus, n: int, topic: str = TOPIC_SPANS, size: int = 100) -> None:
    deliveries = {bus.publish(topic, f"{i:06d}".encode() + b"x" * size, key=str(i).encode(),
                              headers=(("wk-signal", b"traces"),)) for i in range(n)}
    for delivery in deliveries:
        delivery.result(10)


def _values(bus: EmbeddedBus, group: str = "ingest", topic: str = TOPIC_SPANS) -> list[bytes]:
    consumer = bus.consumer(topic, group)
    out: list[bytes] = []
    while batch := consumer.poll(10_000, 0.2):
        out += [r.value[:6] for r in batch]
    return out


def test_what_no_consumer_committed_comes_back_after_a_restart(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path, SMALL)
    consumer = bus.consumer(TOPIC_SPANS, "ingest")
    _publish(bus, 500)
    records = consumer.poll(1000, 1)
    assert [r.offset for r in records] == list(range(500))
    consumer.commit({(TOPIC_SPANS, 0): 300})
    bus.close()

    again = EmbeddedBus(tmp_path, SMALL)
    consumer = again.consumer(TOPIC_SPANS, "ingest")
    # the run that stopped may have stored 300..499 without committing: they are to be checked
    assert consumer.replay_horizon() == {(TOPIC_SPANS, 0): 500}
    records = consumer.poll(1000, 1)
    assert [r.offset for r in records] == list(range(300, 500))
    assert records[0].key == b"300" and records[0].headers == (("wk-signal", b"traces"),)
    _publish(again, 1)  # offsets go on from where they were
    assert [r.offset for r in consumer.poll(10, 1)] == [500]
    again.close()


def test_concurrent_publishers_share_fsyncs(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path, WalConfig())
    syncs_before = _sample("_count")
    threads = [threading.Thread(target=_publish, args=(bus, 200)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    syncs = _sample("_count") - syncs_before
    assert 1 <= syncs < 8 * 200 / 4, f"{syncs} fsyncs for 1,600 publishes"
    assert len(_values(bus)) == 1600
    bus.close()


@pytest.mark.parametrize("damage", ["torn", "flipped", "zeros"])
def test_a_damaged_tail_is_cut_and_counted_never_a_refusal_to_start(
        tmp_path: Path, damage: str) -> None:
    bus = EmbeddedBus(tmp_path, SMALL)
    _publish(bus, 100)
    bus.close()
    segment = max(tmp_path.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_size)
    blob = segment.read_bytes()
    if damage == "torn":  # a crash in the middle of the last frame
        segment.write_bytes(blob[:-30])
    elif damage == "flipped":  # one bit of the last frame's value
        segment.write_bytes(blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:])
    else:  # a power cut after the file grew but before its data landed
        segment.write_bytes(blob + b"\0" * 4096)
    cut_before = metrics.WAL_CUT_BYTES._value.get()

    again = EmbeddedBus(tmp_path, SMALL)
    values = _values(again)
    expected = 100 if damage == "zeros" else 99
    assert values == [f"{i:06d}".encode() for i in range(expected)]
    assert metrics.WAL_CUT_BYTES._value.get() > cut_before
    _publish(again, 1)  # the log goes on after the cut
    again.close()
    assert len(_values(EmbeddedBus(tmp_path, SMALL))) == expected + 1


def test_consumed_segments_are_deleted(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path, SMALL)
    consumer = bus.consumer(TOPIC_SPANS, "ingest")
    for _ in range(8):  # ~ 500 KB: segments of 64 KB (a write may run past one)
        _publish(bus, 250, size=200)
    assert len(list(tmp_path.glob(f"*{SUFFIX}"))) > 2
    records = consumer.poll(5000, 1)
    consumer.commit({(TOPIC_SPANS, 0): records[-1].offset + 1})
    assert len(list(tmp_path.glob(f"*{SUFFIX}"))) == 1  # only the segment being written
    assert bus.wal is not None and bus.wal.size < SMALL.segment_bytes
    bus.close()


def test_a_full_log_refuses_new_data_until_consumers_free_it(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path, WalConfig(segment_bytes=16 * 1024, max_bytes=64 * 1024))
    ingest = bus.consumer(TOPIC_SPANS, "ingest")
    with pytest.raises(BusError, match="full"):
        for _ in range(1000):
            bus.publish(TOPIC_SPANS, b"x" * 1000).result(5)
    assert not bus.healthy()
    # what stages derive from accepted data is still taken: refusing it would stall them
    bus.publish(TOPIC_SAMPLES, b"derived").result(5)
    records = ingest.poll(10_000, 1)
    ingest.commit({(TOPIC_SPANS, 0): records[-1].offset + 1})
    assert bus.healthy()
    bus.publish(TOPIC_SPANS, b"y").result(5)
    bus.close()


def test_interval_fsync_acknowledges_before_the_sync_and_loses_nothing_on_close(
        tmp_path: Path) -> None:
    config = WalConfig(fsync="interval", fsync_interval_ms=50)
    bus = EmbeddedBus(tmp_path, config)
    _publish(bus, 300)
    bus.close()
    assert len(_values(EmbeddedBus(tmp_path, config))) == 300


_FILLING = """
import resource, signal, sys
from pathlib import Path
from watchkeeper.agent.bus import BusError, TOPIC_SPANS
from watchkeeper.agent.bus.embedded import EmbeddedBus
from watchkeeper.agent.config import WalConfig
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
bus = EmbeddedBus(Path(sys.argv[1]), WalConfig())
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
acked = 0
try:
    for i in range(10_000):
        bus.publish(TOPIC_SPANS, f"{i:06d}".encode() + b"x" * 1000).result(5)
        acked += 1
except BusError as exc:
    print(acked, exc, flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
bus.publish(TOPIC_SPANS, b"after").result(5)  # room again: the log takes data again
bus.close()
"""


def test_a_disk_that_fills_up_refuses_the_publish_and_keeps_the_log_whole(
        tmp_path: Path) -> None:
    """The OS refuses the write (a file size limit stands in for a full disk): the publisher
    hears so, the log is not torn, and every acknowledged record is there after restart."""
    done = subprocess.run([sys.executable, "-c", _FILLING, str(tmp_path), str(200_000)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    acked, _, reason = done.stdout.strip().partition(" ")
    assert "write-ahead log" in reason and int(acked) > 50
    values = _values(EmbeddedBus(tmp_path, WalConfig()))
    assert values[:int(acked)] == [f"{i:06d}".encode() for i in range(int(acked))]
    assert values[-1] == b"after"
    assert len(values) == int(acked) + 1


def test_the_log_files_are_private(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path, SMALL)
    _publish(bus, 1)
    bus.close()
    for path in tmp_path.glob(f"*{SUFFIX}"):
        assert path.stat().st_mode & 0o077 == 0, f"{path} readable by others"


def test_consumers_committing_at_once_leave_the_newest_offsets(tmp_path: Path) -> None:
    """Ingest and watch commit from their own threads: neither fails, and the file on disk
    holds both groups' last commits."""
    bus = EmbeddedBus(tmp_path, SMALL)
    _publish(bus, 500)
    _publish(bus, 500, topic=TOPIC_SAMPLES)
    errors: list[BaseException] = []

    def commit_all(topic: str, group: str) -> None:
        consumer = bus.consumer(topic, group)
        try:
            for offset in range(1, 501):
                consumer.commit({(topic, 0): offset})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=commit_all, args=(TOPIC_SPANS, "ingest")),
               threading.Thread(target=commit_all, args=(TOPIC_SAMPLES, "watch"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bus.close()
    assert errors == []
    committed = json.loads((tmp_path / "offsets.json").read_text())
    assert committed == {TOPIC_SPANS: {"ingest": 500}, TOPIC_SAMPLES: {"watch": 500}}


def test_an_unreadable_offsets_file_replays_the_log_instead_of_refusing_to_start(
        tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path, SMALL)
    consumer = bus.consumer(TOPIC_SPANS, "ingest")
    _publish(bus, 10)
    consumer.commit({(TOPIC_SPANS, 0): 5})
    bus.close()
    (tmp_path / "offsets.json").write_bytes(b"\x00garbage")
    again = EmbeddedBus(tmp_path, SMALL)
    consumer = again.consumer(TOPIC_SPANS, "ingest")
    assert consumer.replay_horizon() == {(TOPIC_SPANS, 0): 10}  # all of it is checked
    assert len(consumer.poll(100, 1)) == 10
    again.close()
