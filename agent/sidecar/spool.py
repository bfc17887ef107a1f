"""A bounded disk queue for when the bus is unreachable. What the sidecar acknowledged to an
app is either on the bus or here (fsync'd), never only in memory; segments survive restarts and
are replayed oldest first when the bus returns.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from watchkeeper.agent.bus import Headers

SEGMENT_BYTES = 8 * 1024 * 1024
_LEN = struct.Struct(">I")


class SpoolFull(Exception):
    """No room left: the caller answers with a retryable status instead of dropping."""


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


def _fields(message: Message) -> list[bytes]:
    fields = [message.topic.encode(), message.key or b"", message.value,
              str(len(message.headers)).encode()]
    for name, value in message.headers:
        fields += [name.encode(), value]
    return fields


def encode(message: Message) -> bytes:
    parts = [_LEN.pack(len(f)) + f for f in _fields(message)]
    body = b"".join(parts)
    return _LEN.pack(len(body)) + body


def decode(blob: bytes) -> Iterator[Message]:
    pos = 0
    while pos < len(blob):
        (size,) = _LEN.unpack_from(blob, pos)
        end = pos + 4 + size
        if end > len(blob):
            return  # a torn write at the tail from a crash: everything before it is whole
        fields = []
        cursor = pos + 4
        while cursor < end:
            (n,) = _LEN.unpack_from(blob, cursor)
            fields.append(blob[cursor + 4:cursor + 4 + n])
            cursor += 4 + n
        topic, key, value, count = fields[:4]
        rest = fields[4:]
        headers = tuple((rest[2 * i].decode(), rest[2 * i + 1]) for i in range(int(count)))
        yield Message(topic.decode(), key or None, value, headers)
        pos = end


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        segments = self._segments()
        self._bytes = sum(p.stat().st_size for p in segments)
        self._records = sum(sum(1 for _ in decode(p.read_bytes())) for p in segments)
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
        blob = b"".join(encode(m) for m in messages)
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
            return segments[0], list(decode(segments[0].read_bytes()))

    def remove(self, segment: Path, records: int) -> None:
        with self._lock:
            size = segment.stat().st_size
            segment.unlink()
            self._bytes -= size
            self._records -= records
            self.refusing = False
