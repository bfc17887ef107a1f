"""Watchers as the agent runs them: a config entry plus what the agent injects (device,
precision, and the data dir where trained heads live), and the thresholds that apply. Shared
by the watch service and eval-watcher so both see the same watcher."""

from __future__ import annotations

from pathlib import Path

from watchkeeper.agent.config import WatchConfig
from watchkeeper.detectors.watchers import (
    AsyncWatcher,
    Embedder,
    Watcher,
    WatcherSpec,
    default_thresholds,
)
from watchkeeper.detectors.watchers.registry import build


def load_watcher(spec: WatcherSpec, watch: WatchConfig,
                 data_dir: Path | None) -> Watcher | AsyncWatcher | Embedder:
    """Build `spec` with the service's device and precision; a trainable head also gets the
    agent's data dir, so a config entry can name a head by its name alone. Options the entry
    sets itself win."""
    injected: dict[str, object] = {"device": watch.device, "precision": watch.precision}
    if spec.kind == "trainable_head" and data_dir is not None:
        injected["data_dir"] = str(data_dir)
    return build(spec.model_copy(update={"options": {**injected, **spec.options}}))


def thresholds_for(spec: WatcherSpec, watcher: Watcher | AsyncWatcher | Embedder
                   ) -> dict[str, float]:
    """The configured thresholds, and the watcher's own for labels the config leaves out."""
    return {**default_thresholds(watcher), **spec.thresholds}
