"""Watchers score the text of samples: toxicity, safety, quality. One contract for all of them
(`base.Watcher`; `base.AsyncWatcher` for the kinds that call out, declared `io_bound`);
`registry.build(spec)` makes one from its config entry and its kind's typed options."""

from watchkeeper.detectors.watchers.base import (
    AsyncWatcher,
    Embedder,
    Item,
    Watcher,
    WatcherLoadError,
    WatcherSpec,
    default_thresholds,
    is_io_bound,
    items_for,
    score_blocking,
)

__all__ = ["AsyncWatcher", "Embedder", "Item", "Watcher", "WatcherLoadError", "WatcherSpec",
           "default_thresholds", "is_io_bound", "items_for", "score_blocking"]
