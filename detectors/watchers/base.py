"""The watcher contract. Like a scikit-learn estimator, a watcher's constructor only stores and
loads; `score` is pure (texts in, label scores out, same order) and never touches the network or
the store. The watch service does batching, thresholds, storage and flags around it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

WatchField = Literal["prompt", "completion", "both", "pair"]


class WatcherLoadError(Exception):
    """A watcher cannot start (missing weights, bad options): raised at start, with the reason."""


class WatcherSpec(BaseModel):
    """One entry of `watch.watchers` in the config."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    kind: str
    field: WatchField = "completion"
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="label → score at or above which a sample is flagged")
    options: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Item:
    """One text to score. `context` is the other side for pair watchers (the prompt, when the
    completion is checked against it); `meta` carries what text alone does not say."""

    sample_id: str
    field: str
    text: str
    context: str = ""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@runtime_checkable
class Watcher(Protocol):
    """Optionally also `default_thresholds: dict[str, float]`: the thresholds the watcher
    itself stands by (a trained head's, chosen at training). The service flags on them for
    the labels its config gives no threshold. Optional, so it is not a protocol member: read
    it through `default_thresholds(watcher)`."""

    name: str
    version: str
    device: str
    max_batch: int
    labels: tuple[str, ...]

    def score(self, items: Sequence[Item]) -> list[dict[str, float]]:
        """One {label: score} per item, in order; scores in [0, 1], higher = more of it."""


@runtime_checkable
class Embedder(Protocol):
    name: str
    version: str
    device: str
    max_batch: int
    dimensions: int

    def embed(self, items: Sequence[Item]) -> list[list[float]]:
        """One vector per item, in order (unit length, so cosine similarity is a dot product)."""


def default_thresholds(watcher: Watcher | Embedder) -> dict[str, float]:
    """The watcher's own thresholds, empty when it has none."""
    return {str(label): float(value)
            for label, value in (getattr(watcher, "default_thresholds", None) or {}).items()}


def items_for(sample: Any, field: WatchField) -> list[Item]:
    """The texts of a sample that a watcher with this field reads (empty texts are skipped,
    except that an empty completion is itself worth scoring by quality heuristics)."""
    sample_id = str(sample.sample_id)
    meta = {"finish_reasons": list(sample.finish_reasons), "status": sample.status,
            "output_tokens": sample.output_tokens}
    prompt = Item(sample_id, "prompt", sample.prompt_text, meta=meta)
    completion = Item(sample_id, "completion", sample.completion_text, meta=meta)
    if field == "prompt":
        return [prompt] if prompt.text else []
    if field == "completion":
        return [completion] if sample.status != "error" else []
    if field == "both":
        return [i for i in (prompt, completion) if i.text]
    if not (sample.prompt_text and sample.completion_text):
        return []
    return [Item(sample_id, "pair", sample.completion_text, context=sample.prompt_text,
                 meta=meta)]
