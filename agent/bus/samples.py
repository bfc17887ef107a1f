"""The wk.samples message: normalised samples as JSON lines, up to 64 (or 512 KB) a message.

A Kafka send costs kafka-python some 90 µs of CPU whatever the message's size, and one message
per sample made publishing the largest single cost of ingest over Kafka. A message with one
sample is one line, so consumers read both forms alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

SAMPLES_PER_MESSAGE = 64
# On a message whose samples ingest found already stored while replaying: a run that crashed
# stored them, and may or may not have published them, so they go out again, and consumers
# check what they made of them before (decision 0004).
REPLAYED_HEADER = ("wk-replayed", b"1")
MESSAGE_BYTES = 512 * 1024


def pack(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Messages from JSON lines, in order; a line larger than MESSAGE_BYTES travels alone."""
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        if chunk and (len(chunk) == SAMPLES_PER_MESSAGE or size + len(line) > MESSAGE_BYTES):
            yield b"\n".join(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        yield b"\n".join(chunk)


def unpack(message: bytes) -> list[bytes]:
    return [line for line in message.split(b"\n") if line]


def samples_in(message: bytes) -> int:
    """How many samples a message holds, without splitting it."""
    return message.count(b"\n") + 1
