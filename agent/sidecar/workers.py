"""Worker processes for the sidecar's accept step (accept.py), with `sidecar.workers` > 0.

Why: redaction is most of the sidecar's CPU (docs/benchmarks.md §2), and in `up` it shares
one interpreter lock with ingest and watch; in worker processes it runs on other cores, and
the receiving process only parses, hands bytes over and forwards. Each worker builds its own
steps from the config once. A worker that dies breaks the pool: the export it held is answered
as unavailable (exporters retry) and a new pool starts."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from watchkeeper.agent.config import SidecarConfig
from watchkeeper.agent.sidecar.accept import Accepted, Steps
from watchkeeper.agent.sidecar.signals import SIGNALS, Signal

log = logging.getLogger(__name__)
_steps: Steps | None = None  # a worker's own
_BY_NAME = {signal.name: signal for signal in SIGNALS}


def _start(config: SidecarConfig) -> None:
    global _steps
    _steps = Steps(config)


def _accept(body: bytes, signal_name: str) -> Accepted:
    assert _steps is not None, "the worker was not started with its config"
    signal = _BY_NAME[signal_name]
    return _steps.accept(signal.request.FromString(body), signal)


class WorkerBroken(Exception):
    """A worker died while it held an export: answer it as unavailable."""


class Workers:
    def __init__(self, config: SidecarConfig, processes: int) -> None:
        self.config = config
        self.processes = processes
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: the receiving process runs threads (a fork would copy their locks mid-use)
        return ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start, initargs=(self.config,))

    async def warm(self) -> None:
        """Start every worker and load its steps before the first export arrives."""
        empty = [asyncio.wrap_future(self._pool.submit(_accept, b"", SIGNALS[0].name))
                 for _ in range(self.processes)]
        await asyncio.gather(*empty)

    async def accept(self, body: bytes, signal: Signal) -> Accepted:
        try:
            return await asyncio.wrap_future(self._pool.submit(_accept, body, signal.name))
        except BrokenProcessPool as exc:
            log.error("a sidecar worker died; starting new ones")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            raise WorkerBroken(str(exc)) from exc

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
