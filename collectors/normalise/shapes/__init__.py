"""Attribute shapes of GenAI instrumentations. Each module reads one shape and returns the
messages it found; adding a shape is one module here plus its fixtures under tests/fixtures.
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


class Shape(Protocol):
    NAME: str

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
