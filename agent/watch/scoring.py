"""Runs one watcher over a micro-batch: sorted by length (less padding), chunked to the
watcher's batch limit, timed, and isolated so that one bad sample fails alone.

A pure watcher runs on the caller's thread. An I/O-bound one (`AsyncWatcher`, the LLM judge)
runs on the process's I/O loop (`detectors/watchers/io_loop.py`), its chunks at once (the
watcher bounds its own calls in flight and their timeouts): `start` hands it over and returns
a future, so the watch service computes the other watchers while it waits on the network."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

from watchkeeper.detectors.watchers import Embedder, Item, Watcher
from watchkeeper.detectors.watchers.base import AsyncWatcher, is_io_bound

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


async def _run_async(items: Sequence[Item], limit: int,
                     call: Callable[[Sequence[Item]], Awaitable[list[R]]]
                     ) -> list[tuple[Item, float, R | None, str]]:
    """`_run` for a coroutine: every chunk at once, and a failed chunk's items one by one."""
    order = sorted(range(len(items)), key=lambda i: len(items[i].text))
    chunks = [[items[i] for i in order[start:start + max(1, limit)]]
              for start in range(0, len(order), max(1, limit))]

    async def alone(item: Item) -> tuple[Item, float, R | None, str]:
        began = time.perf_counter()
        try:
            value: R | None = (await call([item]))[0]
            error = ""
        except Exception as exc:
            value, error = None, f"{type(exc).__name__}: {exc}"[:500]
            log.warning("watcher failed on a sample",
                        extra={"sample_id": item.sample_id, "error": error})
        return item, (time.perf_counter() - began) * 1000, value, error

    async def chunk_of(chunk: list[Item]) -> list[tuple[Item, float, R | None, str]]:
        began = time.perf_counter()
        try:
            values = await call(chunk)
            if len(values) != len(chunk):
                raise ValueError(f"returned {len(values)} results for {len(chunk)} items")
        except Exception:
            return list(await asyncio.gather(*(alone(item) for item in chunk)))
        share = (time.perf_counter() - began) * 1000 / len(chunk)
        return [(item, share, value, "") for item, value in zip(chunk, values, strict=True)]

    return [row for part in await asyncio.gather(*(chunk_of(c) for c in chunks)) for row in part]


async def score_async(watcher: AsyncWatcher, items: Sequence[Item]) -> list[Outcome]:
    """An I/O-bound watcher over a batch, on the running loop."""
    return [Outcome(item, ms, scores=value, error=error)
            for item, ms, value, error in await _run_async(items, watcher.max_batch,
                                                           watcher.score)]


def start(watcher: AsyncWatcher, items: Sequence[Item]) -> Future[list[Outcome]]:
    """An I/O-bound watcher's batch handed to the I/O loop; the future holds its outcomes."""
    from watchkeeper.detectors.watchers import io_loop

    return io_loop.submit(score_async(watcher, items))


def score(watcher: Watcher | AsyncWatcher, items: Sequence[Item]) -> list[Outcome]:
    """A batch's outcomes, in the watcher's own way (an I/O-bound one waited for here)."""
    if is_io_bound(watcher):
        return start(watcher, items).result()
    return [Outcome(item, ms, scores=value, error=error)
            for item, ms, value, error in _run(items, watcher.max_batch, watcher.score)]


def embed(embedder: Embedder, items: Sequence[Item]) -> list[Outcome]:
    return [Outcome(item, ms, vector=value, error=error)
            for item, ms, value, error in _run(items, embedder.max_batch, embedder.embed)]
