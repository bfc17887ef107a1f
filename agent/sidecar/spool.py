"""A bounded disk queue for when the bus is unreachable. What the sidecar acknowledged to an
app is either on the bus or here (fsync'd), never only in memory; segments survive restarts and
are replayed oldest first when the bus returns. Its segments hold the write-ahead log's frames
(bus/wal.py), so a torn tail is found by its checksum.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from watchkeeper.agent.bus import Message, Record
from watchkeeper.agent.bus.wal import decode, encode

SEGMENT_BYTES = 8 * 1024 * 1024


class SpoolFull(Exception):
    """No room left: the caller answers with a retryable status instead of dropping."""


def _frames(messages: list[Message]) -> bytes:
    """The write-ahead log's checksummed frames (the offset is unused here)."""
    return b"".join(encode(Record(m.topic, 0, 0, m.key, m.value, m.headers)) for m in messages)


def _read(path: Path) -> list[Message]:
    """A segment's whole frames: a torn tail from a crash is left out."""
    records, _ = decode(path.read_bytes())
    return [Message(r.topic, r.key, r.value, r.headers) for r in records]


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        segments = self._segments()
        self._bytes = sum(p.stat().st_size for p in segments)
        self._records = sum(len(_read(p)) for p in segments)
        self._next = int(segments[-1].stem) + 1 if segments else 0
        self._current: Path | None = None
        self.refusing = False  # the last append did not fit: unready until room is made

    def _segments(self) -> list[Path]:
        return sorted(self.directory.glob("*.seg"))

    @property
    def depth(self) -> tuple[int, int]:
        """(records, bytes) waiting."""
        return self._records, self._bytes

    def __bool__(self) -> bool:
        return self._records > 0

    def append(self, messages: list[Message]) -> None:
        blob = _frames(messages)
        with self._lock:
            if self._bytes + len(blob) > self.max_bytes:
                self.refusing = True
                raise SpoolFull(f"spool holds {self._bytes} of {self.max_bytes} bytes")
            if self._current is None or self._current.stat().st_size >= SEGMENT_BYTES:
                self._current = self.directory / f"{self._next:012d}.seg"
                self._next += 1
            with open(self._current, "ab") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            self._bytes += len(blob)
            self._records += len(messages)

    def oldest(self) -> tuple[Path, list[Message]] | None:
        """The oldest segment and its messages; the segment being written is sealed first."""
        with self._lock:
            segments = self._segments()
            if not segments:
                return None
            if segments[0] == self._current:
                self._current = None  # seal it: new appends start a new segment
            return segments[0], _read(segments[0])

    def remove(self, segment: Path, records: int) -> None:
        with self._lock:
            size = segment.stat().st_size
            segment.unlink()
            self._bytes -= size
            self._records -= records
            self.refusing = False
