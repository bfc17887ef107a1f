"""Attribute shapes of GenAI instrumentations. Each module reads one shape and returns the
messages it found; adding a shape is one module here (with its `MARKERS`) plus its fixtures
under tests/fixtures.

A shape's `MARKERS` say what on a span shows that the shape may find content there. The
compiled path (native/) takes on only the latest GenAI content on the span; it is handed every
other shape's markers (collectors/normalise/native.py builds them from `registry()`) and
leaves any span that carries one to the Python normaliser, so a new shape reaches Python
without a change to native/.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from watchkeeper.collectors.normalise.otlp import LogView, SpanView
from watchkeeper.collectors.normalise.sample import Message


@dataclass(slots=True)
class Content:
    input: list[Message] = field(default_factory=list)
    output: list[Message] = field(default_factory=list)
    system: str = ""
    # attribute keys holding content, kept out of the sample's leftover attribute map
    consumed: set[str] = field(default_factory=set)

    def empty(self) -> bool:
        return not (self.input or self.output or self.system)


@dataclass(frozen=True, slots=True)
class Markers:
    """What on a span marks a shape: attribute keys, attribute key prefixes, span event names."""

    keys: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    events: tuple[str, ...] = ()


class Shape(Protocol):
    NAME: str
    MARKERS: Markers

    def extract(self, span: SpanView, logs: Sequence[LogView]) -> Content | None: ...


def registry() -> list[Shape]:
    """In order of preference: when two shapes both carry content, the first wins."""
    from watchkeeper.collectors.normalise.shapes import (
        genai_events,
        genai_latest,
        openinference,
        openllmetry_indexed,
    )

    return [genai_latest, openllmetry_indexed, openinference, genai_events]  # type: ignore[list-item]
