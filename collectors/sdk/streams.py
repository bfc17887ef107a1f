"""Transparent proxies around streaming responses that tell an observer what went by.

A streamed completion is only known once the app has read it, so the span of a streaming
call must outlive the `create()` call and end when the stream does: exhausted, closed, failed,
or dropped and garbage collected. The proxies keep the stream's whole surface (iteration,
context manager, `close()`, every other attribute, even `isinstance`) so instrumented and
uninstrumented code behave the same.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol


class StreamObserver(Protocol):
    """Receives each item, then exactly one of `finish` or `fail` (extra calls are ignored)."""

    def observe(self, item: Any) -> None: ...

    def finish(self) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


class _Proxy:
    """Attribute and `isinstance` passthrough to the wrapped stream; observer bookkeeping."""

    _wk_stream: Any
    _wk_observer: StreamObserver

    def __init__(self, stream: Any, observer: StreamObserver) -> None:
        object.__setattr__(self, "_wk_stream", stream)
        object.__setattr__(self, "_wk_observer", observer)
        # Ends the span when the app drops the stream without reading or closing it. The
        # callback holds the observer, never the proxy, so it does not keep the proxy alive.
        finalizer = weakref.finalize(self, observer.finish)
        finalizer.atexit = False

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # makes isinstance(proxy, openai.Stream) true
        return type(self._wk_stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wk_stream, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._wk_stream, name, value)

    def __repr__(self) -> str:
        return repr(self._wk_stream)

    def _wk_stopped(self, exc: BaseException) -> None:
        """The stream raised instead of giving an item: the end of it, or a failure."""
        if isinstance(exc, StopIteration | StopAsyncIteration):
            self._wk_observer.finish()
        else:
            self._wk_observer.fail(exc)

    @contextlib.contextmanager
    def _wk_closing(self) -> Iterator[None]:
        """Closing or leaving the stream ends the observation, even when closing fails."""
        try:
            yield
        finally:
            self._wk_observer.finish()


class TracedStream(_Proxy):
    """A synchronous stream (openai `Stream`) that reports its chunks."""

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._wk_stream)
        except BaseException as exc:
            self._wk_stopped(exc)
            raise
        self._wk_observer.observe(item)
        return item

    def __enter__(self) -> TracedStream:
        self._wk_stream.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        with self._wk_closing():
            return self._wk_stream.__exit__(*exc_info)

    def close(self) -> None:
        with self._wk_closing():
            self._wk_stream.close()


class TracedAsyncStream(_Proxy):
    """An asynchronous stream (openai `AsyncStream`) that reports its chunks."""

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._wk_stream.__anext__()
        except BaseException as exc:
            self._wk_stopped(exc)
            raise
        self._wk_observer.observe(item)
        return item

    async def __aenter__(self) -> TracedAsyncStream:
        await self._wk_stream.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        with self._wk_closing():
            return await self._wk_stream.__aexit__(*exc_info)

    async def close(self) -> None:
        with self._wk_closing():
            await self._wk_stream.close()

    async def aclose(self) -> None:
        await self.close()
