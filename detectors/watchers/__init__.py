"""Watchers score the text of samples: toxicity, safety, quality. One contract for all of them
(`base.Watcher`); `registry.build(spec)` makes one from its config entry."""

from watchkeeper.detectors.watchers.base import (
    Embedder,
    Item,
    Watcher,
    WatcherLoadError,
    WatcherSpec,
    default_thresholds,
    items_for,
)

__all__ = ["Embedder", "Item", "Watcher", "WatcherLoadError", "WatcherSpec", "default_thresholds",
           "items_for"]
