"""How a watcher's failure to start reads: the service reports a WatcherLoadError as it is, so
the message must say which watcher could not start."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from watchkeeper.detectors.watchers.base import WatcherLoadError, WatcherSpec

W = TypeVar("W")


def names_load_errors(init: Callable[[W, WatcherSpec], None]
                      ) -> Callable[[W, WatcherSpec], None]:
    """Decorates a watcher's `__init__`: its WatcherLoadError gains the watcher's name and kind."""

    @functools.wraps(init)
    def load(self: W, spec: WatcherSpec) -> None:
        try:
            init(self, spec)
        except WatcherLoadError as exc:
            raise WatcherLoadError(f"watcher {spec.name!r} ({spec.kind}): {exc}") from exc

    return load
