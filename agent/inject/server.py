"""The webhook over TLS: `/mutate` for pods that opt in by annotation, `/mutate/namespace` for
pods of namespaces labelled `watchkeeper.io/inject=enabled`, `/healthz`, `/readyz` and
`/metrics`. It holds no state and calls nothing, so two replicas behind a Service are
interchangeable, and a rotated certificate (a Secret volume updated in place) is picked up for
new connections without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from watchkeeper.agent.inject.mutate import Scope, review
from watchkeeper.agent.inject.template import InjectionTemplate
from watchkeeper.agent.lifecycle import seconds_left
from watchkeeper.agent.metrics import INJECTOR_REVIEWS

log = logging.getLogger(__name__)
# The API server sends one Pod per review; Kubernetes caps an object at about 1.5 MiB.
MAX_BODY_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True)
class InjectorOptions:
    template: InjectionTemplate
    tls_cert: Path
    tls_key: Path
    host: str = "0.0.0.0"
    port: int = 8443
    reload_s: float = 10.0  # how often the certificate files are checked for a new version


class CertificateReloader:
    """Loads the key pair into one SSL context and loads it again when either file changes:
    OpenSSL uses the context's current pair for each new handshake."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert, self.key = cert, key
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._seen: tuple[tuple[int, int], ...] = ()
        self.check()

    def _version(self) -> tuple[tuple[int, int], ...]:
        # os.stat follows the ..data symlink a Secret volume swaps on update.
        return tuple((s.st_ino, s.st_mtime_ns) for s in map(os.stat, (self.cert, self.key)))

    def check(self) -> bool:
        """Reload when the files changed; a half-written pair keeps the previous one."""
        version = self._version()
        if version == self._seen:
            return False
        try:
            self.context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            if not self._seen:
                raise
            log.warning("new TLS key pair not loaded, serving the previous one",
                        extra={"error": str(exc)})
            return False
        self._seen = version
        log.info("TLS key pair loaded", extra={"cert": str(self.cert)})
        return True


def app(template: InjectionTemplate) -> web.Application:
    async def mutate(request: web.Request, scope: Scope) -> web.Response:
        try:
            body = json.loads(await request.read())
            answer = review(body, template, scope)
        except web.HTTPRequestEntityTooLarge:
            raise
        except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
            INJECTOR_REVIEWS.labels(result="bad_request").inc()
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            return web.json_response({"error": f"not an AdmissionReview: {reason}"}, status=400)
        response = answer["response"]
        result = ("denied" if not response["allowed"] else
                  "injected" if "patch" in response else "unchanged")
        INJECTOR_REVIEWS.labels(result=result).inc()
        if result != "unchanged":
            log.info("pod %s", result, extra={"uid": response["uid"], "scope": scope.value,
                                               "namespace": body["request"].get("namespace")})
        return web.json_response(answer)

    async def pods(request: web.Request) -> web.Response:
        return await mutate(request, Scope.POD)

    async def namespaces(request: web.Request) -> web.Response:
        return await mutate(request, Scope.NAMESPACE)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics(_: web.Request) -> web.Response:
        # Counts of reviews only: nothing of the pods is kept or shown.
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    application = web.Application(client_max_size=MAX_BODY_BYTES)
    application.router.add_post("/mutate", pods)
    application.router.add_post("/mutate/namespace", namespaces)
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/readyz", healthz)
    application.router.add_get("/metrics", metrics)
    return application


class InjectorService:
    name = "injector"

    def __init__(self, options: InjectorOptions) -> None:
        self.options = options
        self.port = options.port
        self.certificates = CertificateReloader(options.tls_cert, options.tls_key)
        self._runner: web.AppRunner | None = None
        self._reload: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(app(self.options.template), access_log=None,
                                     shutdown_timeout=5.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.options.host, self.options.port,
                          ssl_context=self.certificates.context).start()
        self.port = int(self._runner.addresses[0][1])
        self._reload = asyncio.create_task(self._watch_certificates())

    async def _watch_certificates(self) -> None:
        while True:
            await asyncio.sleep(self.options.reload_s)
            try:
                self.certificates.check()
            except OSError as exc:  # mid-swap: the next check finds the new files
                log.warning("TLS files unreadable", extra={"error": str(exc)})

    def ready(self) -> dict[str, Any]:
        return {}

    async def drain(self, deadline: float) -> None:
        if self._reload is not None:
            self._reload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reload
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), max(0.1, seconds_left(deadline)))

    async def stop(self) -> None:
        self._runner = None


async def serve(options: InjectorOptions, drain_s: float = 10.0) -> None:
    """Run until SIGTERM or SIGINT, printing one JSON line once it listens."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = InjectorService(options)
    await service.start()
    print(json.dumps({"event": "ready", "injector": service.port}), flush=True)
    await stop.wait()
    await service.drain(time.monotonic() + drain_s)
    await service.stop()
