"""Assembles the services of one process from config and runs them with one lifecycle:
start, serve, and on SIGTERM drain (stop accepting, flush what was accepted, exit 0).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web

from watchkeeper.agent import api
from watchkeeper.agent.auth import TokenCheck, require_token
from watchkeeper.agent.bus import Bus, BusError, open_bus
from watchkeeper.agent.config import Settings
from watchkeeper.agent.ingest.service import IngestService
from watchkeeper.agent.schedule.service import ScheduleService
from watchkeeper.agent.sidecar import grpc_receiver
from watchkeeper.agent.sidecar import http as otlp_http
from watchkeeper.agent.sidecar.pipeline import Forwarder, Pipeline
from watchkeeper.agent.sidecar.spool import Spool
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import migrate
from watchkeeper.agent.store.sandbox import Sandbox
from watchkeeper.agent.watch.service import WatchService

log = logging.getLogger(__name__)
OWNER_FILE = "agent.json"


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

    def __post_init__(self) -> None:
        self.bus: Bus | None = None
        self.store: Store | None = None
        self.sandbox: Sandbox | None = None
        self._runners: list[web.AppRunner] = []
        self._grpc: grpc.aio.Server | None = None
        self._ingest: IngestService | None = None
        self._watch: WatchService | None = None
        self._schedule: ScheduleService | None = None
        self._threads: dict[str, threading.Thread] = {}
        self._stops: dict[str, threading.Event] = {}
        self._forwarder: Forwarder | None = None
        self._replay: asyncio.Task[None] | None = None
        self._stop_replay = asyncio.Event()

    async def start(self) -> None:
        s = self.settings
        require_token(s.api.host, s.api.token, "api")
        if self.sidecar:
            require_token(s.sidecar.host, s.sidecar.token, "sidecar")
        self.bus = open_bus(s.bus, s.kafka)
        if self.ingest or self.watch or self.schedule:
            s.data_dir.mkdir(parents=True, exist_ok=True)
            self.store = Store(s.store_url, s.store)
            applied = await asyncio.to_thread(migrate, self.store)
            log.info("store ready", extra={"store": _safe_url(s.store_url), "applied": applied})
            self.sandbox = await asyncio.to_thread(Sandbox, self.store, s.query)
        if self.schedule:
            assert self.store is not None
            self._schedule = ScheduleService(self.store, s.schedule, s.watch, s.data_dir)
            self._schedule.start()
        if self.watch:
            assert self.store is not None
            self._watch = await asyncio.to_thread(WatchService, self.bus, self.store, s.watch,
                                                    s.data_dir)
            self._start_thread("watch", self._watch.run)
        if self.ingest:
            assert self.store is not None
            self._ingest = IngestService(self.bus, self.store, s.ingest)
            self._start_thread("ingest", self._ingest.run)
        if self.sidecar:
            spool = None
            if s.bus.startswith("kafka") and s.sidecar.spool.enabled:
                spool = Spool(s.sidecar.spool.directory or s.data_dir / "spool",
                              s.sidecar.spool.max_bytes)
            self._forwarder = Forwarder(self.bus, spool, s.sidecar.ack_timeout_s)
            if spool is not None:
                self._replay = asyncio.create_task(self._forwarder.replay(self._stop_replay))
            pipeline = Pipeline(s.sidecar, self._forwarder)
            tokens = TokenCheck(s.sidecar.token)
            runner = await otlp_http.serve(
                otlp_http.app(pipeline, tokens, s.sidecar.max_body_bytes),
                s.sidecar.host, s.sidecar.otlp_http_port)
            self._runners.append(runner)
            self.ports.otlp_http = otlp_http.bound_port(runner)
            self._grpc, self.ports.otlp_grpc = await grpc_receiver.serve(
                pipeline, tokens, s.sidecar.host, s.sidecar.otlp_grpc_port,
                s.sidecar.max_body_bytes)
        api_runner = await otlp_http.serve(
            api.app(self.store, self.sandbox, self.readiness, TokenCheck(s.api.token)),
            s.api.host, s.api.port)
        self._runners.append(api_runner)
        self.ports.api = otlp_http.bound_port(api_runner)
        if self.store is not None:
            self._write_owner_file()
        # What start built (modules, models, the engine's bindings) lives until exit: moved out
        # of the cyclic collector's reach so its full passes stop rescanning it under load.
        gc.freeze()
        log.info("watchkeeper started", extra={"otlp_http": self.ports.otlp_http,
                                               "otlp_grpc": self.ports.otlp_grpc,
                                               "api": self.ports.api, "bus": s.bus})

    def _start_thread(self, name: str, run: Callable[[threading.Event], None]) -> None:
        self._stops[name] = threading.Event()
        self._threads[name] = threading.Thread(target=run, args=(self._stops[name],), name=name,
                                               daemon=True)
        self._threads[name].start()

    def readiness(self) -> dict[str, Any]:
        """Ready while it can accept data. A sidecar whose bus is down stays ready while its
        spool has room, and says so; a full spool makes it unready."""
        checks: dict[str, Any] = {"bus": self.bus is not None and self.bus.healthy()}
        for name, thread in self._threads.items():
            checks[name] = thread.is_alive()
        if self.sidecar:
            checks["sidecar"] = self._grpc is not None
            spool = self._forwarder.spool if self._forwarder else None
            if spool is not None:
                checks["spool"] = not spool.refusing
                checks["spool_records"] = spool.depth[0]
                checks["bus"] = checks["bus"] or checks["spool"]
        return checks

    async def stop(self) -> None:
        """Drain: receivers first (no new data), then ingest flushes everything accepted."""
        log.info("draining")
        if self.sandbox is not None:  # user queries are cancelled, not waited for
            await asyncio.to_thread(self.sandbox.close)
        if self._grpc is not None:
            await self._grpc.stop(grace=5.0)
        for runner in self._runners[:-1]:
            await runner.cleanup()
        if self._replay is not None:
            self._stop_replay.set()
            await self._replay
        if self.bus is not None:
            try:
                await asyncio.to_thread(self.bus.flush, 10.0)
            except BusError as exc:  # ingest commits only what the bus holds: nothing is lost
                log.warning("bus flush on stop failed", extra={"error": str(exc)})
        for name in ("ingest", "watch"):  # ingest drains into wk.samples, then watch drains it
            if name in self._threads:
                self._stops[name].set()
                await asyncio.to_thread(self._threads[name].join)
        if self._schedule is not None:
            await asyncio.to_thread(self._schedule.stop)
        await self._runners[-1].cleanup()  # the API answers /readyz until the end
        if self.bus is not None:
            self.bus.close()
        if self.store is not None:
            (self.settings.data_dir / OWNER_FILE).unlink(missing_ok=True)
            self.store.close()
        log.info("stopped", extra={
            "stored_samples": self._ingest.stored_samples if self._ingest else 0,
            "scored_samples": self._watch.scored_samples if self._watch else 0})

    def _write_owner_file(self) -> None:
        """Tells `watchkeeper query --data-dir` which running process owns the store."""
        owner = {"pid": os.getpid(), "api": f"http://{self.settings.api.host}:{self.ports.api}"}
        (self.settings.data_dir / OWNER_FILE).write_text(json.dumps(owner))


def owner_api(data_dir: Path) -> str | None:
    """The API URL of a live process that owns the store under data_dir, if any."""
    try:
        owner = json.loads((data_dir / OWNER_FILE).read_text())
        os.kill(int(owner["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return str(owner["api"])


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
