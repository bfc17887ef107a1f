"""The watchers a bias job probes: those of the watch section, by name, built on first use the
way the watch service builds them (agent/watch/loading.py) and kept for later runs, so a
model loads once per process, not once per run."""

from __future__ import annotations

import threading
from pathlib import Path

from watchkeeper.agent.config import WatchConfig
from watchkeeper.agent.watch.loading import load_watcher
from watchkeeper.detectors.watchers.base import (
    AsyncWatcher,
    Watcher,
    WatcherLoadError,
    WatcherSpec,
    is_io_bound,
)


class WatcherPool:
    def __init__(self, config: WatchConfig, data_dir: Path | None = None) -> None:
        self.config = config
        self.data_dir = data_dir  # where trainable heads named by name alone live
        self.specs = {spec.name: spec for spec in config.watchers}
        self.built: dict[str, Watcher | AsyncWatcher] = {}
        self.lock = threading.Lock()  # two jobs on the scheduler's threads build a model once

    def get(self, name: str) -> tuple[WatcherSpec, Watcher | AsyncWatcher]:
        """The watcher's config entry and the loaded watcher (an I/O-bound one is scored
        through `score_blocking`); WatcherLoadError says why not."""
        spec = self.specs.get(name)
        if spec is None:
            raise WatcherLoadError(f"watcher {name!r} is not in watch.watchers "
                                   f"(known: {', '.join(self.specs) or 'none'})")
        with self.lock:
            if name not in self.built:
                watcher = load_watcher(spec, self.config, self.data_dir)
                if not (is_io_bound(watcher) or isinstance(watcher, Watcher)):
                    raise WatcherLoadError(f"watcher {name!r} ({spec.kind}) computes vectors, "
                                           "not scores: there is nothing to probe")
                self.built[name] = watcher
        return spec, self.built[name]
