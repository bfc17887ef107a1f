"""The sidecar as one service: the OTLP/HTTP and OTLP/gRPC receivers over one pipeline, the
forwarder to the bus, and (with Kafka) the disk spool and its replay. Draining stops the
receivers first, so nothing new is accepted, then waits for the bus to hold what was."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from aiohttp import web

from watchkeeper.agent.auth import TokenCheck
from watchkeeper.agent.bus import Bus, BusError
from watchkeeper.agent.config import Settings
from watchkeeper.agent.lifecycle import seconds_left
from watchkeeper.agent.sidecar import grpc_receiver
from watchkeeper.agent.sidecar import http as otlp_http
from watchkeeper.agent.sidecar.pipeline import Forwarder, Pipeline
from watchkeeper.agent.sidecar.spool import Spool
from watchkeeper.agent.sidecar.workers import Workers

log = logging.getLogger(__name__)
GRPC_GRACE_S = 5.0


class SidecarService:
    name = "sidecar"

    def __init__(self, settings: Settings, bus: Bus) -> None:
        s = settings.sidecar
        self.config = s
        self.bus = bus
        spool = None
        if settings.bus.startswith("kafka") and s.spool.enabled:
            spool = Spool(s.spool.directory or settings.data_dir / "spool", s.spool.max_bytes)
        self.forwarder = Forwarder(bus, spool, s.ack_timeout_s)
        self.workers = Workers(s, s.workers) if s.workers else None
        self.pipeline = Pipeline(s, self.forwarder, self.workers)
        self.http_port = 0
        self.grpc_port = 0
        self._http: web.AppRunner | None = None
        self._grpc: grpc.aio.Server | None = None
        self._replay: asyncio.Task[None] | None = None
        self._stop_replay = asyncio.Event()

    async def start(self) -> None:
        tokens = TokenCheck(self.config.token)
        if self.workers is not None:
            await self.workers.warm()
        if self.forwarder.spool is not None:
            self._replay = asyncio.create_task(self.forwarder.replay(self._stop_replay))
        self._http = await otlp_http.serve(
            otlp_http.app(self.pipeline, tokens, self.config.max_body_bytes),
            self.config.host, self.config.otlp_http_port)
        self.http_port = otlp_http.bound_port(self._http)
        self._grpc, self.grpc_port = await grpc_receiver.serve(
            self.pipeline, tokens, self.config.host, self.config.otlp_grpc_port,
            self.config.max_body_bytes)

    def ready(self) -> dict[str, Any]:
        """Ready while it can accept data. With its bus down it stays ready while the spool
        has room, and says so; a full spool makes it unready."""
        checks: dict[str, Any] = {"sidecar": self._grpc is not None and self._http is not None}
        spool = self.forwarder.spool
        if spool is not None:
            checks["spool"] = not spool.refusing
            checks["spool_records"] = spool.depth[0]
        return checks

    async def drain(self, deadline: float) -> None:
        if self._grpc is not None:
            await self._grpc.stop(grace=min(GRPC_GRACE_S, seconds_left(deadline)))
        if self._http is not None:
            await self._http.cleanup()
        if self._replay is not None:
            self._stop_replay.set()
            await self._replay
        if self.workers is not None:  # the receivers are closed: no export is in a worker
            await asyncio.to_thread(self.workers.close)
        try:
            await asyncio.to_thread(self.bus.flush, seconds_left(deadline))
        except BusError as exc:  # ingest commits only what the bus holds: nothing is lost
            log.warning("bus flush on stop failed", extra={"error": str(exc)})

    async def stop(self) -> None:
        self._grpc = None
        self._http = None
