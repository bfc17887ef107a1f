"""Runs one watcher over a micro-batch: sorted by length (less padding), chunked to the
watcher's batch limit, timed, and isolated so that one bad sample fails alone."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from watchkeeper.detectors.watchers import Embedder, Item, Watcher

log = logging.getLogger(__name__)
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a watcher returned for one item, or why it could not."""

    item: Item
    latency_ms: float
    scores: dict[str, float] | None = None
    vector: list[float] | None = None
    error: str = ""


def _run(items: Sequence[Item], limit: int,
         call: Callable[[Sequence[Item]], list[R]]) -> list[tuple[Item, float, R | None, str]]:
    order = sorted(range(len(items)), key=lambda i: len(items[i].text))
    results: list[tuple[Item, float, R | None, str]] = []
    for start in range(0, len(order), max(1, limit)):
        chunk = [items[i] for i in order[start:start + limit]]
        began = time.perf_counter()
        try:
            values = call(chunk)
            if len(values) != len(chunk):
                raise ValueError(f"returned {len(values)} results for {len(chunk)} items")
            share = (time.perf_counter() - began) * 1000 / len(chunk)
            results += [(item, share, value, "") for item, value in zip(chunk, values,
                                                                        strict=True)]
        except Exception:
            # Score one by one to find the sample that breaks the batch; the others go on.
            for item in chunk:
                began = time.perf_counter()
                try:
                    value = call([item])[0]
                    error = ""
                except Exception as exc:
                    value, error = None, f"{type(exc).__name__}: {exc}"[:500]
                    log.warning("watcher failed on a sample",
                                extra={"sample_id": item.sample_id, "error": error})
                results.append((item, (time.perf_counter() - began) * 1000, value, error))
    return results


def score(watcher: Watcher, items: Sequence[Item]) -> list[Outcome]:
    return [Outcome(item, ms, scores=value, error=error)
            for item, ms, value, error in _run(items, watcher.max_batch, watcher.score)]


def embed(embedder: Embedder, items: Sequence[Item]) -> list[Outcome]:
    return [Outcome(item, ms, vector=value, error=error)
            for item, ms, value, error in _run(items, embedder.max_batch, embedder.embed)]
