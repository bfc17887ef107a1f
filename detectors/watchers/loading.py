"""How a watcher's failure to start reads: the service reports a WatcherLoadError as it is, so
the message must say which watcher could not start."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from watchkeeper.detectors.watchers.base import WatcherLoadError, WatcherSpec

W = TypeVar("W")
Opts = TypeVar("Opts")


def names_load_errors(init: Callable[[W, WatcherSpec, Opts | None], None]
                      ) -> Callable[[W, WatcherSpec, Opts | None], None]:
    """Decorates a watcher's `__init__(spec, options=None)`: its WatcherLoadError gains the
    watcher's name and kind (once)."""

    @functools.wraps(init)
    def load(self: W, spec: WatcherSpec, options: Opts | None = None) -> None:
        try:
            init(self, spec, options)
        except WatcherLoadError as exc:
            prefix = f"watcher {spec.name!r} ({spec.kind})"
            if str(exc).startswith(prefix):
                raise
            raise WatcherLoadError(f"{prefix}: {exc}") from exc

    return load
