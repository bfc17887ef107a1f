"""The embedded bus's write-ahead log: what the sidecar acknowledged is on disk before the
answer goes out, and comes back after `kill -9` or a power cut.

The anchors are Kafka's log (segments, deleted whole once every consumer is past them) and the
OpenTelemetry Collector's persistent queue. One log holds every topic of the process, so one
fsync covers everything concurrent publishers appended (group commit): a syncer thread takes
what was appended while the previous write ran, writes it, syncs once, and completes all of
their deliveries together, with one shared future rather than one per message.

A frame is the body's length, its CRC-32C, and the body (offset, topic, key, headers, value).
Recovery reads the segments in order and cuts a segment at its first frame that is short or
fails its checksum: a torn write from a crash, or zeros a power cut left at the end of a file.
The cut is logged and counted (`wk_bus_wal_cut_bytes_total`), never a refusal to start.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from crc32c import crc32c

from watchkeeper.agent import metrics
from watchkeeper.agent.bus import BusError, Delivery, Record
from watchkeeper.agent.config import WalConfig

log = logging.getLogger(__name__)

_FRAME = struct.Struct(">II")  # body length, CRC-32C of the body (as Kafka's records)
_HEAD = struct.Struct(">QHiH")  # offset, topic length, key length (-1: none), header count
_HEADER = struct.Struct(">HI")  # header name length, value length
SUFFIX = ".wal"


def encode(record: Record) -> bytes:
    topic = record.topic.encode()
    key = record.key
    head = _HEAD.pack(record.offset, len(topic), -1 if key is None else len(key),
                      len(record.headers)) + topic
    if key:
        head += key
    for name, value in record.headers:
        encoded = name.encode()
        head += _HEADER.pack(len(encoded), len(value)) + encoded + value
    value = record.value  # last: its length is what the body has left
    crc = crc32c(value, crc32c(head))
    return b"".join((_FRAME.pack(len(head) + len(value), crc), head, value))


def _body(body: bytes) -> Record:
    offset, topic_len, key_len, count = _HEAD.unpack_from(body)
    pos = _HEAD.size
    topic = body[pos:pos + topic_len].decode()
    pos += topic_len
    key = None
    if key_len >= 0:
        key = body[pos:pos + key_len]
        pos += key_len
    headers = []
    for _ in range(count):
        name_len, value_len = _HEADER.unpack_from(body, pos)
        pos += _HEADER.size
        name = body[pos:pos + name_len].decode()
        pos += name_len
        headers.append((name, body[pos:pos + value_len]))
        pos += value_len
    if pos > len(body):
        raise ValueError("fields run past the frame")
    return Record(topic, 0, offset, key, body[pos:], tuple(headers))


def decode(blob: bytes) -> tuple[list[Record], int]:
    """The whole frames at the start of a segment, and where they end: the rest (a torn or
    corrupt tail) is not to be trusted."""
    records: list[Record] = []
    pos = 0
    while pos + _FRAME.size <= len(blob):
        size, crc = _FRAME.unpack_from(blob, pos)
        start = pos + _FRAME.size
        body = blob[start:start + size]
        if len(body) < max(size, _HEAD.size) or crc32c(body) != crc:
            break
        try:
            records.append(_body(body))
        except (ValueError, struct.error, UnicodeDecodeError):  # checksum right, body wrong
            break
        pos = start + size
    return records, pos


@dataclass(slots=True)
class _Segment:
    path: Path
    size: int = 0
    ends: dict[str, int] = field(default_factory=dict)  # topic -> last offset in it + 1

    def note(self, records: list[Record]) -> None:
        for record in records:
            self.ends[record.topic] = record.offset + 1


def _write_all(fd: int, blob: bytes) -> None:
    """os.write may write less than asked (a disk filling up): go on, or fail."""
    view = memoryview(blob)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(errno.ENOSPC, "no space left on device")
        view = view[written:]


def _sync_directory(directory: Path) -> None:
    """A new or deleted file is durable only once its directory entry is."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteAheadLog:
    """Append-only and segmented. `append` returns a delivery that completes once the record
    is durable by the policy (`fsync: batch`: synced; `interval`: written, synced within the
    interval); `on_durable` is told the offsets first, so consumers see a record only once it
    is durable and a record a crash loses was never read."""

    def __init__(self, directory: Path, config: WalConfig,
                 on_durable: Callable[[list[Record]], None],
                 on_failed: Callable[[list[Record]], None]) -> None:
        self.directory = directory
        self.config = config
        self._on_durable = on_durable
        self._on_failed = on_failed
        directory.mkdir(parents=True, exist_ok=True)
        self._cond = threading.Condition()
        self._pending: list[tuple[Record, bytes]] = []  # with its frame
        self._future: Future[None] | None = None
        self._closing = False
        self._segments: list[_Segment] = []
        self.recovered = self._recover()
        self._bytes = sum(s.size for s in self._segments)
        self._active = self._new_segment()
        self._fd = os.open(self._active.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _sync_directory(directory)
        self._report()
        self._thread = threading.Thread(target=self._run, name="wk-wal-sync", daemon=True)
        self._thread.start()

    # -- recovery ---------------------------------------------------------------------------
    def _recover(self) -> list[Record]:
        records: list[Record] = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            blob = path.read_bytes()
            found, whole = decode(blob)
            if whole < len(blob):
                cut = len(blob) - whole
                metrics.WAL_CUT_BYTES.inc(cut)
                log.warning("write-ahead log: torn or corrupt tail cut", extra={
                    "segment": path.name, "bytes_cut": cut, "records_kept": len(found)})
                os.truncate(path, whole)
            segment = _Segment(path, whole)
            segment.note(found)
            self._segments.append(segment)
            records += found
        if records:
            log.info("write-ahead log recovered", extra={"records": len(records),
                                                          "segments": len(self._segments)})
        return records

    def _new_segment(self) -> _Segment:
        number = int(self._segments[-1].path.stem) + 1 if self._segments else 0
        segment = _Segment(self.directory / f"{number:012d}{SUFFIX}")
        self._segments.append(segment)
        return segment

    # -- appending --------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Bytes on disk, with what waits to be written."""
        return self._bytes

    def full(self, incoming: int) -> bool:
        return self._bytes + incoming > self.config.max_bytes

    def append(self, record: Record) -> Delivery:
        """Queue a record for the next write. The caller assigns offsets in order under a lock
        of its own, held across this call, so the log's order is the offsets' order."""
        frame = encode(record)
        with self._cond:
            if self._closing:
                raise BusError("write-ahead log closed")
            self._pending.append((record, frame))
            self._bytes += len(frame)
            if self._future is None:
                self._future = Future()
            self._cond.notify()
            return self._future

    def _run(self) -> None:
        interval = self.config.fsync_interval_ms / 1000
        batch_sync = self.config.fsync == "batch"
        last_sync = time.monotonic()
        dirty = False
        while True:
            with self._cond:
                if not self._pending and not self._closing:
                    self._cond.wait(None if batch_sync or not dirty else interval)
                batch, self._pending = self._pending, []
                future, self._future = self._future, None
                closing = self._closing
            if batch and future is not None:
                self._write(batch, future, sync=batch_sync)
                dirty = not batch_sync
            if dirty and (closing or time.monotonic() - last_sync >= interval):
                self._sync()
                dirty = False
                last_sync = time.monotonic()
            if closing and not batch:
                return

    def _write(self, batch: list[tuple[Record, bytes]], future: Future[None], sync: bool
               ) -> None:
        records = [record for record, _ in batch]
        blob = b"".join(frame for _, frame in batch)
        segment = self._active
        try:
            _write_all(self._fd, blob)
            if sync:
                self._sync()
        except OSError as exc:  # disk full, I/O error: refuse, and keep the log whole
            os.truncate(segment.path, segment.size)
            log.error("write-ahead log write failed", extra={"error": str(exc)})
            with self._cond:
                self._bytes -= len(blob)
            self._on_failed(records)
            future.set_exception(BusError(f"write-ahead log: {exc}"))
            return
        segment.size += len(blob)
        segment.note(records)
        self._on_durable(records)
        future.set_result(None)
        if segment.size >= self.config.segment_bytes:
            self._roll()
        self._report()

    def _sync(self) -> None:
        started = time.perf_counter()
        os.fdatasync(self._fd)
        metrics.WAL_SYNC_SECONDS.observe(time.perf_counter() - started)

    def _roll(self) -> None:
        """Seal the active segment and start the next (only the syncer thread writes)."""
        os.fsync(self._fd)
        os.close(self._fd)
        with self._cond:
            self._active = self._new_segment()
        self._fd = os.open(self._active.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _sync_directory(self.directory)

    # -- truncating -------------------------------------------------------------------------
    def release(self, low: Mapping[str, int]) -> int:
        """Delete sealed segments, oldest first, whose every record lies below its topic's
        low-water mark (what every consumer of the topic has committed); returns bytes freed."""
        freed = 0
        with self._cond:
            while len(self._segments) > 1 and self._segments[0] is not self._active:
                oldest = self._segments[0]
                if any(end > low.get(topic, 0) for topic, end in oldest.ends.items()):
                    break
                oldest.path.unlink()
                self._segments.pop(0)
                self._bytes -= oldest.size
                freed += oldest.size
        if freed:
            _sync_directory(self.directory)
            self._report()
        return freed

    def _report(self) -> None:
        metrics.WAL_BYTES.set(self._bytes)
        metrics.WAL_SEGMENTS.set(len(self._segments))

    def close(self) -> None:
        """Write and sync what is pending, then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        os.fsync(self._fd)
        os.close(self._fd)
