"""One lifecycle for every service a process runs (the sidecar's receivers, ingest, watch,
schedule, the API): start, ready, drain, stop.

- `start()` returns once the service serves (a listener is bound, a loop is running).
- `ready()` says whether it can take work now, as named checks for `/readyz`.
- `drain(deadline)` stops taking new work and finishes what was accepted, by `deadline` (a
  `time.monotonic()` instant): receivers stop listening and flush to the bus, consumers store
  what the bus holds and commit. Past the deadline it gives up and says so; whatever it had not
  committed stays on the bus for the next start.
- `stop()` releases what is left (sockets, consumers, sessions).

The runtime starts services in its order and drains them in the reverse order, so that what
feeds a service is drained before it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)


@runtime_checkable
class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    def ready(self) -> dict[str, Any]: ...

    async def drain(self, deadline: float) -> None: ...

    async def stop(self) -> None: ...


def seconds_left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


class LoopService:
    """A service whose work is a blocking loop, `run(stop)`, on a thread of its own: the loop
    returns once `stop` is set and it has drained. Subclasses set `name` and define `run`."""

    name: str

    def run(self, stop: threading.Event) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        self._stop_event = threading.Event()
        self._thread = threading.Thread(target=self.run, args=(self._stop_event,),
                                        name=self.name, daemon=True)
        self._thread.start()

    def ready(self) -> dict[str, Any]:
        return {self.name: self._thread.is_alive()}

    async def drain(self, deadline: float) -> None:
        self._stop_event.set()
        await asyncio.to_thread(self._thread.join, seconds_left(deadline))
        if self._thread.is_alive():
            log.warning("drain passed its deadline; the rest stays on the bus",
                        extra={"service": self.name})

    async def stop(self) -> None:
        """The loop releases what it holds itself when it returns."""
