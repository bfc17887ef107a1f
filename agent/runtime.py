"""Assembles the services of one process from config and runs them with one lifecycle:
start, serve, and on SIGTERM drain (stop accepting, flush what was accepted, exit 0).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from watchkeeper.agent.api import ApiService
from watchkeeper.agent.auth import TokenCheck, require_token
from watchkeeper.agent.bus import Bus, open_bus
from watchkeeper.agent.config import Settings
from watchkeeper.agent.lifecycle import Service
from watchkeeper.agent.owner import clear_owner, write_owner
from watchkeeper.agent.sidecar.service import SidecarService

# What only a process with a store runs (ingest, watch, schedule, the store's API routes) is
# imported when it starts one: a sidecar in an application's pod loads none of it (24 MB of
# resident memory: docs/benchmarks.md, "The sidecar's memory").
if TYPE_CHECKING:
    from watchkeeper.agent.evaluations.emitter import EvaluationEmitter
    from watchkeeper.agent.ingest.service import IngestService
    from watchkeeper.agent.store.client import Store
    from watchkeeper.agent.store_api import StoreApi
    from watchkeeper.agent.watch.service import WatchService

log = logging.getLogger(__name__)
# How long SIGTERM may take in all: the receivers' grace, ingest's drain of the bus and the
# join window, the watchers' last batch (Kubernetes' default grace period is 30 s).
DRAIN_S = 25.0


@dataclass
class Ports:
    otlp_http: int = 0
    otlp_grpc: int = 0
    api: int = 0


@dataclass
class Runtime:
    settings: Settings
    sidecar: bool = True
    ingest: bool = True
    watch: bool = False
    schedule: bool = False
    ports: Ports = field(default_factory=Ports)
    bus: Bus | None = None  # opened from settings at start unless given (benchmarks do)

    def __post_init__(self) -> None:
        self.store: Store | None = None
        self.services: list[Service] = []
        self._ingest: IngestService | None = None
        self._watch: list[WatchService] = []  # a service per lane (watch/lanes.py)
        self.emitter: EvaluationEmitter | None = None

    async def start(self) -> None:
        """Open the bus and the store, then start the services in order: the API first (it
        reports on the others), then what consumes, then the receivers that feed it all."""
        s = self.settings
        require_token(s.api.host, s.api.token, "api")
        if self.sidecar:
            require_token(s.sidecar.host, s.sidecar.token, "sidecar")
        if self.bus is None:
            self.bus = await asyncio.to_thread(open_bus, s.bus, s.kafka, s.wal_directory, s.wal)
        store_api = await self._open_store() if self.ingest or self.watch or self.schedule \
            else None
        api = ApiService(s.api.host, s.api.port, self.readiness, TokenCheck(s.api.token),
                         store=store_api)
        self.services.append(api)
        if self.schedule:
            from watchkeeper.agent.schedule.service import ScheduleService

            assert self.store is not None
            self.services.append(ScheduleService(self.store, s.schedule, s.watch, s.data_dir))
        if self.watch:
            from watchkeeper.agent.watch.service import watch_services

            assert self.store is not None
            self._watch = await asyncio.to_thread(watch_services, self.bus, self.store,
                                                    s.watch, s.data_dir, emitter=self.emitter,
                                                    export=s.evaluations.export)
            self.services += self._watch
        if self.ingest:
            from watchkeeper.agent.ingest.service import IngestService

            assert self.store is not None
            self._ingest = IngestService(self.bus, self.store, s.ingest, s.evaluations.receive)
            self.services.append(self._ingest)
        sidecar = SidecarService(s, self.bus) if self.sidecar else None
        if sidecar is not None:
            self.services.append(sidecar)
        for service in self.services:
            await service.start()
        self.ports.api = api.port
        if sidecar is not None:
            self.ports.otlp_http, self.ports.otlp_grpc = sidecar.http_port, sidecar.grpc_port
        if self.store is not None:
            self._write_owner_file()
        # What start built (modules, models, the engine's bindings) lives until exit: moved out
        # of the cyclic collector's reach so its full passes stop rescanning it under load.
        gc.freeze()
        log.info("watchkeeper started", extra={"otlp_http": self.ports.otlp_http,
                                               "otlp_grpc": self.ports.otlp_grpc,
                                               "api": self.ports.api, "bus": s.bus})

    async def _open_store(self) -> StoreApi:
        """The store, migrated and priced; the sandbox for people's SQL; the evaluation-event
        emitter when configured; and the API routes over them."""
        from watchkeeper.agent.cost.prices import sync_prices
        from watchkeeper.agent.evaluations.emitter import EvaluationEmitter
        from watchkeeper.agent.store.client import Store
        from watchkeeper.agent.store.migrate import migrate
        from watchkeeper.agent.store.sandbox import Sandbox
        from watchkeeper.agent.store_api import StoreApi

        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = store = Store(s.store_url, s.store)
        applied = await asyncio.to_thread(migrate, store)
        priced = await asyncio.to_thread(sync_prices, store, s.cost)
        log.info("store ready", extra={"store": _safe_url(s.store_url), "applied": applied,
                                       "priced_models": priced})
        sandbox = await asyncio.to_thread(Sandbox, store, s.query)
        # Scores and review verdicts as OpenTelemetry evaluation events, when configured.
        if s.evaluations.export.endpoint:
            self.emitter = EvaluationEmitter(s.evaluations.export)
        return StoreApi(store, sandbox, self.emitter, s.cost, s.store.database)

    def readiness(self) -> dict[str, Any]:
        """Every service's checks; the bus counts as up while a sidecar's spool has room."""
        checks: dict[str, Any] = {"bus": self.bus is not None and self.bus.healthy()}
        for service in self.services:
            checks.update(service.ready())
        if "spool" in checks:
            checks["bus"] = checks["bus"] or checks["spool"]
        return checks

    async def stop(self, drain_s: float = DRAIN_S) -> None:
        """Drain in reverse order of start: the receivers first (no new data, the bus holds what
        was accepted), then ingest stores it, watch scores it, schedule finishes its run, and
        the API, which answered /readyz all along, goes last."""
        log.info("draining")
        deadline = time.monotonic() + drain_s
        for service in reversed(self.services):
            await service.drain(deadline)
        for service in reversed(self.services):
            await service.stop()
        if self.emitter is not None:  # what the services queued goes out before exit
            await asyncio.to_thread(self.emitter.close)
        if self.bus is not None:
            self.bus.close()
        if self.store is not None:
            clear_owner(self.settings.data_dir)
            self.store.close()
        log.info("stopped", extra={
            "stored_samples": self._ingest.stored_samples if self._ingest else 0,
            "scored_samples": sum(lane.scored_samples for lane in self._watch)})

    def _write_owner_file(self) -> None:
        """Tells `watchkeeper query --data-dir` which running process owns the store."""
        write_owner(self.settings.data_dir, f"http://{self.settings.api.host}:{self.ports.api}")


def _safe_url(url: str) -> str:
    """Never log credentials embedded in a URL."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


async def serve_until_signal(runtime: Runtime) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    print(json.dumps({"event": "ready", "otlp_http": runtime.ports.otlp_http,
                      "otlp_grpc": runtime.ports.otlp_grpc, "api": runtime.ports.api}),
          flush=True)
    await stop.wait()
    await runtime.stop()
