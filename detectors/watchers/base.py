"""The watcher contract. Like a scikit-learn estimator, a watcher's constructor only stores and
loads; `score` is pure (texts in, label scores out, same order) and never touches the network or
the store. The watch service does batching, thresholds, storage and flags around it.

A kind that must call out to a service to score (an LLM judge behind an HTTP endpoint) says so:
it is an `AsyncWatcher`, declared `io_bound = True`, whose `score` is a coroutine bounded by its
own options (a timeout per call, a number of calls in flight). The watch service awaits it on
the process's I/O loop (`io_loop.py`) while the pure watchers compute; callers without an event
loop use `score_blocking`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeIs

from watchkeeper.detectors.watchers.sampling import SamplingPolicy

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
    options: dict[str, Any] = Field(
        default_factory=dict, description="as written; checked against the kind's options model "
        "(registry.KINDS) when the config loads and when the watcher is built")
    enabled: bool = True
    sampling: SamplingPolicy = Field(default_factory=SamplingPolicy, description="which "
                                     "samples it scores and its budget (sampling.py)")


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
class AsyncWatcher(Protocol):
    """A watcher whose scores come from a call to another service: `io_bound` is True and
    `score` is awaited. Its options bound it: a timeout on every call and a number of calls in
    flight, so a slow endpoint delays its own scores, not the other watchers'."""

    io_bound: ClassVar[Literal[True]]
    name: str
    version: str
    device: str
    max_batch: int
    labels: tuple[str, ...]

    async def score(self, items: Sequence[Item]) -> list[dict[str, float]]:
        """As `Watcher.score`, awaited."""


def is_io_bound(watcher: object) -> TypeIs[AsyncWatcher]:
    """Whether a watcher declares that it calls out (an AsyncWatcher)."""
    return getattr(watcher, "io_bound", False) is True


def score_blocking(watcher: Watcher | AsyncWatcher, items: Sequence[Item]
                   ) -> list[dict[str, float]]:
    """`watcher.score(items)` for callers without an event loop (eval-watcher, bias probes):
    an AsyncWatcher's runs on the process's I/O loop, and this thread waits for it."""
    if is_io_bound(watcher):
        from watchkeeper.detectors.watchers import io_loop

        return io_loop.run(watcher.score(items))
    return watcher.score(items)


@runtime_checkable
class Embedder(Protocol):
    name: str
    version: str
    device: str
    max_batch: int
    dimensions: int

    def embed(self, items: Sequence[Item]) -> list[list[float]]:
        """One vector per item, in order (unit length, so cosine similarity is a dot product)."""


def default_thresholds(watcher: Watcher | AsyncWatcher | Embedder) -> dict[str, float]:
    """The watcher's own thresholds, empty when it has none."""
    return {str(label): float(value)
            for label, value in (getattr(watcher, "default_thresholds", None) or {}).items()}


SYSTEM_ROLES = frozenset({"system", "developer"})


def system_text(sample: Any) -> str:
    """What the application told the model and the user never sees: the sample's
    `system_instructions`, then the text of every system or developer message in its prompt
    that those do not already hold (the normaliser fills `system_instructions` from the system
    messages when the span has no `gen_ai.system_instructions`, so they are not repeated)."""
    parts: list[str] = []
    instructions = str(getattr(sample, "system_instructions", "") or "").strip()
    if instructions:
        parts.append(instructions)
    for message in getattr(sample, "input_messages", None) or []:
        if getattr(message, "role", "") not in SYSTEM_ROLES:
            continue
        text = message.text().strip()
        if text and not any(text in part for part in parts):
            parts.append(text)
    return "\n".join(parts)


def tool_results(sample: Any) -> list[str]:
    """What tools returned into the prompt (function results, retrieved documents passed as
    tool messages): text the model reads that no user wrote, where indirect prompt injection
    hides."""
    return [text for message in getattr(sample, "input_messages", None) or []
            if getattr(message, "role", "") == "tool" and (text := message.text().strip())]


def items_for(sample: Any, field: WatchField) -> list[Item]:
    """The texts of a sample that a watcher with this field reads (empty texts are skipped,
    except that an empty completion is itself worth scoring by quality heuristics).

    Every item's `meta` carries the sample's `finish_reasons`, `status`, `output_tokens`,
    `system` (`system_text`: the instructions the user does not see, "" when there are none),
    which the prompt-leak watcher compares the completion with, and `tool_results`
    (`tool_results`), which the prompt-injection watcher reads beside the prompt."""
    sample_id = str(sample.sample_id)
    meta = {"finish_reasons": list(sample.finish_reasons), "status": sample.status,
            "output_tokens": sample.output_tokens, "system": system_text(sample),
            "tool_results": tool_results(sample)}
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
