"""The agent's own HTTP API: health, readiness and Prometheus metrics in every process; in a
process that owns the store, also read-only SQL over it, the review queue, repricing (chDB lets
one process own the store, so other commands ask this one) and the live dashboards under /ui
(agent/store_api.py). Everything but /healthz, /readyz, the login form and static files
requires the API token when one is set: as a bearer header, or as the session cookie the login
form sets for a browser.

Against a browser being turned on the API (cross-site requests, DNS rebinding): request bodies
must be JSON, which no cross-site form or simple request can send; a POST a session cookie
authorises must carry X-Watchkeeper-UI, which needs a same-origin script; and an API without a
token answers only requests addressed to a loopback host name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from watchkeeper.agent.auth import Sessions, TokenCheck, is_loopback
from watchkeeper.agent.lifecycle import seconds_left

Readiness = Callable[[], dict[str, Any]]
DENIED = {"error": "missing or invalid bearer token"}
UI_HEADER = "X-Watchkeeper-UI"
PROBES = ("/healthz", "/readyz")
NO_STORE = {"error": "this process does not own a store"}


def reply(payload: Any, status: int = 200,
          headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response (every answer of the API but the pages and metrics)."""
    return web.Response(text=json.dumps(payload, default=str), status=status,
                        content_type="application/json", headers=headers)


class StoreRoutes(Protocol):
    """The routes over a store (agent/store_api.py `StoreApi`), in a process that owns one."""

    def add_routes(self, application: web.Application, access: Access) -> None: ...

    def close(self, timeout_s: float) -> None: ...


@dataclass
class Access:
    """Who may call a route: the bearer token, or a browser's session from the login form
    (for a POST, only from a script of the page)."""

    tokens: TokenCheck
    sessions: Sessions = field(default_factory=Sessions)

    def authorised(self, request: web.Request) -> bool:
        if self.tokens.allows(request.headers.get("Authorization")):
            return True
        return (self.sessions.valid(request.cookies.get(Sessions.COOKIE))
                and (request.method == "GET" or request.headers.get(UI_HEADER) == "1"))

    def denied(self, request: web.Request) -> bool:
        return not self.authorised(request)


def app(readiness: Readiness, tokens: TokenCheck,
        store: StoreRoutes | None = None) -> web.Application:
    access = Access(tokens)

    async def healthz(_: web.Request) -> web.Response:
        return reply({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = await asyncio.to_thread(readiness)
        ready = all(v for v in checks.values() if isinstance(v, bool))
        return reply({"ready": ready, "checks": checks}, 200 if ready else 503)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not tokens.required and request.path not in PROBES \
                and not is_loopback((request.url.host or "").strip("[]")):
            return reply({"error": "this API has no token (api.token), so it answers only "
                                   "requests addressed to a loopback host such as 127.0.0.1; "
                                   f"this one was addressed to {request.host!r}"}, 403)
        if request.method == "POST" and request.path.startswith("/api/") \
                and request.content_type != "application/json":
            return reply({"error": "request bodies must be JSON (Content-Type: "
                                   "application/json)"}, 415)
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    async def prometheus(request: web.Request) -> web.Response:
        if access.denied(request):
            return reply(DENIED, 401)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def no_store(request: web.Request) -> web.Response:
        """The store's routes in a process without one (a sidecar): say where they are not."""
        if access.denied(request):
            return reply(DENIED, 401)
        return reply(NO_STORE, 404)

    application = web.Application(middlewares=[guard])
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/readyz", readyz)
    application.router.add_get("/metrics", prometheus)
    if store is not None:
        store.add_routes(application, access)
    else:
        application.router.add_route("*", "/api/{route:.*}", no_store)
        application.router.add_route("*", "/ui{route:.*}", no_store)
    return application


class ApiService:
    """The API as a service: it starts before the services it reports on and drains after
    them, so /readyz answers until the end; running user queries are cancelled on drain."""

    name = "api"

    def __init__(self, host: str, port: int, readiness: Readiness, tokens: TokenCheck,
                 store: StoreRoutes | None = None) -> None:
        self.host, self.port = host, port
        self.store = store
        self._app = app(readiness, tokens, store)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])  # port 0 asks the OS for a free one

    def ready(self) -> dict[str, Any]:
        return {}  # answering /readyz at all is the API's readiness

    async def drain(self, deadline: float) -> None:
        if self.store is not None:  # user queries are cancelled, not waited for
            await asyncio.to_thread(self.store.close, seconds_left(deadline))
        if self._runner is not None:
            await self._runner.cleanup()

    async def stop(self) -> None:
        self._runner = None
