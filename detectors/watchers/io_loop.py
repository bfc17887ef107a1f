"""The process's I/O loop: one event loop on a daemon thread where I/O-bound watchers
(`base.AsyncWatcher`) run, for callers that have no loop of their own: the watch service's
thread, eval-watcher, bias probes. An AsyncWatcher keeps its HTTP client per event loop, so
running all its calls on this one keeps its connections alive from batch to batch."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed() or _thread is None or not _thread.is_alive():
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=_loop.run_forever, name="watchers-io",
                                       daemon=True)
            _thread.start()
        return _loop


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Run `coro` on the I/O loop; the future is done when it is."""
    return asyncio.run_coroutine_threadsafe(coro, loop())


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the I/O loop and wait for its result (not from the loop's own thread)."""
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError("io_loop.run called on the I/O loop: await the coroutine instead")
    return submit(coro).result()
