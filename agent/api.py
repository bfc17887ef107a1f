"""The agent's own HTTP API: health, readiness, Prometheus metrics, read-only SQL over the
store, the review queue and repricing (chDB lets one process own the store, so other
commands ask this one), and the live dashboards under /ui (dashboards/web.py). Everything but
/healthz, /readyz, the login form and static files requires the API token when one is set: as
a bearer header, or as the session cookie the login form sets for a browser.

Against a browser being turned on the API (cross-site requests, DNS rebinding): request bodies
must be JSON, which no cross-site form or simple request can send; a POST a session cookie
authorises must carry X-Watchkeeper-UI, which needs a same-origin script; and an API without a
token answers only requests addressed to a loopback host name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from watchkeeper.agent.auth import Sessions, TokenCheck, is_loopback
from watchkeeper.agent.config import CostConfig
from watchkeeper.agent.cost.reprice import RepriceRequest, reprice_store
from watchkeeper.agent.evaluations.emitter import EvaluationEmitter
from watchkeeper.agent.lifecycle import seconds_left
from watchkeeper.agent.review.models import FlagQuery, RecordQuery, ReviewRequest
from watchkeeper.agent.review.queue import StoreReviews, UnknownFlags
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.sandbox import QueryBusy, QueryFailed, Sandbox
from watchkeeper.agent.store.sql_policy import QueryRefused
from watchkeeper.dashboards import web as ui
from watchkeeper.dashboards.snapshot import BoardData, BoardRequest, answer

Readiness = Callable[[], dict[str, Any]]
In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out")
DENIED = {"error": "missing or invalid bearer token"}
UI_HEADER = "X-Watchkeeper-UI"
PROBES = ("/healthz", "/readyz")
NO_STORE = {"error": "this process does not own a store"}


def _json(payload: Any, status: int = 200,
          headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(payload, default=str), status=status,
                        content_type="application/json", headers=headers)


def _busy(why: str) -> web.HTTPTooManyRequests:
    """429 with the reason, raised from a helper that returns no response of its own."""
    return web.HTTPTooManyRequests(text=json.dumps({"error": why}),
                                   content_type="application/json",
                                   headers={"Retry-After": "5"})


def app(store: Store | None, sandbox: Sandbox | None, readiness: Readiness,
        tokens: TokenCheck, emitter: EvaluationEmitter | None = None,
        cost: CostConfig | None = None, database: str = "watchkeeper") -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = await asyncio.to_thread(readiness)
        ready = all(v for v in checks.values() if isinstance(v, bool))
        return _json({"ready": ready, "checks": checks}, 200 if ready else 503)

    sessions = Sessions()

    def authorised(request: web.Request) -> bool:
        """The bearer token, or a browser's session (for a POST, from a script of the page)."""
        if tokens.allows(request.headers.get("Authorization")):
            return True
        return (sessions.valid(request.cookies.get(Sessions.COOKIE))
                and (request.method == "GET" or request.headers.get(UI_HEADER) == "1"))

    def denied(request: web.Request) -> bool:
        return not authorised(request)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not tokens.required and request.path not in PROBES \
                and not is_loopback((request.url.host or "").strip("[]")):
            return _json({"error": "this API has no token (api.token), so it answers only "
                                   "requests addressed to a loopback host such as 127.0.0.1; "
                                   f"this one was addressed to {request.host!r}"}, 403)
        if request.method == "POST" and request.path.startswith("/api/") \
                and request.content_type != "application/json":
            return _json({"error": "request bodies must be JSON (Content-Type: "
                                   "application/json)"}, 415)
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    async def prometheus(request: web.Request) -> web.Response:
        if denied(request):
            return _json(DENIED, 401)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # User queries wait for a slot here, not in a thread, and run on threads of their own:
    # however many arrive, the threads the receivers and readiness use stay free.
    slots = asyncio.Semaphore(sandbox.limits.max_concurrent) if sandbox else None
    workers = (ThreadPoolExecutor(sandbox.limits.max_concurrent, "user-sql")
               if sandbox else None)

    async def in_slot(call: Callable[[], Out]) -> Out:
        """`call` on a user-query thread once a slot is free; 429 when none frees in time."""
        assert sandbox is not None and slots is not None
        try:
            await asyncio.wait_for(slots.acquire(), sandbox.limits.queue_timeout_s)
        except TimeoutError:
            raise _busy(f"all {sandbox.limits.max_concurrent} query slots are busy") from None
        try:
            return await asyncio.get_running_loop().run_in_executor(workers, call)
        finally:
            slots.release()

    async def query(request: web.Request) -> web.Response:
        if denied(request):
            return _json(DENIED, 401)
        if sandbox is None:
            return _json(NO_STORE, 404)
        try:
            payload = await request.json()
            sql = payload["sql"]
            parameters = payload.get("parameters") or None
            if not isinstance(sql, str) or not isinstance(parameters, dict | None):
                raise TypeError
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            return _json({"error": 'body must be JSON: {"sql": "...", "parameters": {...}}'}, 400)
        try:
            result = await in_slot(lambda: sandbox.run(sql, parameters))
        except QueryRefused as exc:
            return _json({"error": str(exc)}, 403)
        except QueryBusy as exc:
            return _json({"error": str(exc)}, 429, {"Retry-After": "5"})
        except QueryFailed as exc:
            return _json({"error": str(exc), "limit": exc.limit}, 400)
        return _json({"columns": result.columns, "rows": result.rows,
                      "truncated": result.truncated})

    def panel_sql(sql: str) -> tuple[list[str], list[list[Any]]]:
        """A dashboard's own SQL, in the same read-only, bounded sessions as a person's."""
        assert sandbox is not None
        result = sandbox.run(sql)
        return result.columns, [list(row) for row in result.rows]

    async def board(request: BoardRequest) -> BoardData:
        try:
            return await in_slot(lambda: answer(database, panel_sql, request))
        except QueryBusy as exc:
            raise _busy(str(exc)) from None

    async def close_workers(_: web.Application) -> None:
        if workers is not None:
            workers.shutdown(wait=False, cancel_futures=True)

    reviews = StoreReviews(store, emitter) if store is not None else None

    async def on_reviews(request: web.Request, model: type[In],
                         call: Callable[[StoreReviews, In], BaseModel]) -> web.Response:
        """The review routes: token, store, the query string (GET) or JSON body (POST)
        validated into `model`, then the call."""
        if denied(request):
            return _json(DENIED, 401)
        if reviews is None:
            return _json(NO_STORE, 404)
        try:
            payload = await request.json() if request.method == "POST" else dict(request.query)
            argument = model.model_validate(payload)
        except (json.JSONDecodeError, ValidationError) as exc:
            return _json({"error": str(exc)}, 400)
        try:
            result = await asyncio.to_thread(call, reviews, argument)
        except UnknownFlags as exc:
            return _json({"error": str(exc)}, 404)
        return _json(result.model_dump(mode="json"))

    async def flags(request: web.Request) -> web.Response:
        return await on_reviews(request, FlagQuery, StoreReviews.flags)

    async def records(request: web.Request) -> web.Response:
        return await on_reviews(request, RecordQuery, StoreReviews.records)

    async def review(request: web.Request) -> web.Response:
        return await on_reviews(request, ReviewRequest, StoreReviews.review)

    async def reprice(request: web.Request) -> web.Response:
        """`watchkeeper reprice` for the store this process owns, by its own price config."""
        if denied(request):
            return _json(DENIED, 401)
        if store is None:
            return _json(NO_STORE, 404)
        try:
            argument = RepriceRequest.model_validate(await request.json())
        except (json.JSONDecodeError, ValidationError) as exc:
            return _json({"error": str(exc)}, 400)
        result = await asyncio.to_thread(reprice_store, store, cost or CostConfig(), argument)
        return _json(result)

    application = web.Application(middlewares=[guard])
    application.on_cleanup.append(close_workers)
    ui.add_routes(application, database=database, tokens=tokens, sessions=sessions,
                  authorised=authorised, boards=board if sandbox is not None else None,
                  reply=_json)
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/readyz", readyz)
    application.router.add_get("/metrics", prometheus)
    application.router.add_post("/api/query", query)
    application.router.add_get("/api/flags", flags)
    application.router.add_get("/api/flags/records", records)
    application.router.add_post("/api/reviews", review)
    application.router.add_post("/api/reprice", reprice)
    return application


class ApiService:
    """The API as a service: it starts before the services it reports on and drains after
    them, so /readyz answers until the end; running user queries are cancelled on drain."""

    name = "api"

    def __init__(self, host: str, port: int, store: Store | None, sandbox: Sandbox | None,
                 readiness: Readiness, tokens: TokenCheck,
                 emitter: EvaluationEmitter | None = None, cost: CostConfig | None = None,
                 database: str = "watchkeeper") -> None:
        self.host, self.port = host, port
        self.sandbox = sandbox
        self._app = app(store, sandbox, readiness, tokens, emitter, cost, database)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])  # port 0 asks the OS for a free one

    def ready(self) -> dict[str, Any]:
        return {}  # answering /readyz at all is the API's readiness

    async def drain(self, deadline: float) -> None:
        if self.sandbox is not None:  # user queries are cancelled, not waited for
            await asyncio.to_thread(self.sandbox.close, seconds_left(deadline))
        if self._runner is not None:
            await self._runner.cleanup()

    async def stop(self) -> None:
        self._runner = None
