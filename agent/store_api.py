"""The API's routes over the store this process owns: read-only SQL, the review queue,
repricing, and the live dashboards under /ui (dashboards/web.py). Added to the API
(agent/api.py) only in a process that opens a store, so that a sidecar, which never does, loads
none of the store's client, the dashboards or the review queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from watchkeeper.agent.api import DENIED, Access, reply
from watchkeeper.agent.config import CostConfig
from watchkeeper.agent.cost.reprice import RepriceRequest, reprice_store
from watchkeeper.agent.evaluations.emitter import EvaluationEmitter
from watchkeeper.agent.review.models import FlagQuery, RecordQuery, ReviewRequest
from watchkeeper.agent.review.queue import StoreReviews, UnknownFlags
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.sandbox import QueryBusy, QueryFailed, Sandbox
from watchkeeper.agent.store.sql_policy import QueryRefused
from watchkeeper.dashboards import web as ui
from watchkeeper.dashboards.snapshot import BoardData, BoardRequest, answer

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out")


def _busy(why: str) -> web.HTTPTooManyRequests:
    """429 with the reason, raised from a helper that returns no response of its own."""
    return web.HTTPTooManyRequests(text=json.dumps({"error": why}),
                                   content_type="application/json",
                                   headers={"Retry-After": "5"})


@dataclass
class StoreApi:
    """What the store's routes answer from; `sandbox` runs people's and dashboards' SQL."""

    store: Store
    sandbox: Sandbox
    emitter: EvaluationEmitter | None = None
    cost: CostConfig | None = None
    database: str = "watchkeeper"

    def close(self, timeout_s: float) -> None:
        """Cancel the user queries still running (drain does not wait for them)."""
        self.sandbox.close(timeout_s)

    def add_routes(self, application: web.Application, access: Access) -> None:
        sandbox, store, denied = self.sandbox, self.store, access.denied
        # User queries wait for a slot here, not in a thread, and run on threads of their own:
        # however many arrive, the threads the receivers and readiness use stay free.
        slots = asyncio.Semaphore(sandbox.limits.max_concurrent)
        workers = ThreadPoolExecutor(sandbox.limits.max_concurrent, "user-sql")

        async def in_slot(call: Callable[[], Out]) -> Out:
            """`call` on a user-query thread once a slot is free; 429 when none frees in time."""
            try:
                await asyncio.wait_for(slots.acquire(), sandbox.limits.queue_timeout_s)
            except TimeoutError:
                raise _busy(f"all {sandbox.limits.max_concurrent} query slots are busy") \
                    from None
            try:
                return await asyncio.get_running_loop().run_in_executor(workers, call)
            finally:
                slots.release()

        async def query(request: web.Request) -> web.Response:
            if denied(request):
                return reply(DENIED, 401)
            try:
                payload = await request.json()
                sql = payload["sql"]
                parameters = payload.get("parameters") or None
                if not isinstance(sql, str) or not isinstance(parameters, dict | None):
                    raise TypeError
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                return reply({"error": 'body must be JSON: {"sql": "...", '
                                       '"parameters": {...}}'}, 400)
            try:
                result = await in_slot(lambda: sandbox.run(sql, parameters))
            except QueryRefused as exc:
                return reply({"error": str(exc)}, 403)
            except QueryBusy as exc:
                return reply({"error": str(exc)}, 429, {"Retry-After": "5"})
            except QueryFailed as exc:
                return reply({"error": str(exc), "limit": exc.limit}, 400)
            return reply({"columns": result.columns, "rows": result.rows,
                          "truncated": result.truncated})

        def panel_sql(sql: str) -> tuple[list[str], list[list[object]]]:
            """A dashboard's own SQL, in the same read-only, bounded sessions as a person's."""
            result = sandbox.run(sql)
            return result.columns, [list(row) for row in result.rows]

        async def board(request: BoardRequest) -> BoardData:
            try:
                return await in_slot(lambda: answer(self.database, panel_sql, request))
            except QueryBusy as exc:
                raise _busy(str(exc)) from None

        async def close_workers(_: web.Application) -> None:
            workers.shutdown(wait=False, cancel_futures=True)

        reviews = StoreReviews(store, self.emitter)

        async def on_reviews(request: web.Request, model: type[In],
                             call: Callable[[StoreReviews, In], BaseModel]) -> web.Response:
            """The review routes: token, the query string (GET) or JSON body (POST)
            validated into `model`, then the call."""
            if denied(request):
                return reply(DENIED, 401)
            try:
                payload = (await request.json() if request.method == "POST"
                           else dict(request.query))
                argument = model.model_validate(payload)
            except (json.JSONDecodeError, ValidationError) as exc:
                return reply({"error": str(exc)}, 400)
            try:
                result = await asyncio.to_thread(call, reviews, argument)
            except UnknownFlags as exc:
                return reply({"error": str(exc)}, 404)
            return reply(result.model_dump(mode="json"))

        async def flags(request: web.Request) -> web.Response:
            return await on_reviews(request, FlagQuery, StoreReviews.flags)

        async def records(request: web.Request) -> web.Response:
            return await on_reviews(request, RecordQuery, StoreReviews.records)

        async def review(request: web.Request) -> web.Response:
            return await on_reviews(request, ReviewRequest, StoreReviews.review)

        async def reprice(request: web.Request) -> web.Response:
            """`watchkeeper reprice` for the store this process owns, by its own price
            config."""
            if denied(request):
                return reply(DENIED, 401)
            try:
                argument = RepriceRequest.model_validate(await request.json())
            except (json.JSONDecodeError, ValidationError) as exc:
                return reply({"error": str(exc)}, 400)
            result = await asyncio.to_thread(reprice_store, store, self.cost or CostConfig(),
                                             argument)
            return reply(result)

        application.on_cleanup.append(close_workers)
        ui.add_routes(application, database=self.database, tokens=access.tokens,
                      sessions=access.sessions, authorised=access.authorised, boards=board,
                      reply=reply)
        application.router.add_post("/api/query", query)
        application.router.add_get("/api/flags", flags)
        application.router.add_get("/api/flags/records", records)
        application.router.add_post("/api/reviews", review)
        application.router.add_post("/api/reprice", reprice)
