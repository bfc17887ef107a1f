"""The agent's own HTTP API: health, readiness, Prometheus metrics, read-only SQL over the
store and the review queue (chDB lets one process own the store, so other commands ask this
one). Everything but /healthz and /readyz requires the API token when one is set."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from watchkeeper.agent.auth import TokenCheck
from watchkeeper.agent.review.models import FlagQuery, RecordQuery, ReviewRequest
from watchkeeper.agent.review.queue import StoreReviews, UnknownFlags
from watchkeeper.agent.store.client import ReadOnlyViolation, Store

Readiness = Callable[[], dict[str, Any]]
In = TypeVar("In", bound=BaseModel)
DENIED = {"error": "missing or invalid bearer token"}
NO_STORE = {"error": "this process does not own a store"}


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(payload, default=str), status=status,
                        content_type="application/json")


def app(store: Store | None, readiness: Readiness, tokens: TokenCheck,
        max_rows: int) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = await asyncio.to_thread(readiness)
        ready = all(v for v in checks.values() if isinstance(v, bool))
        return _json({"ready": ready, "checks": checks}, 200 if ready else 503)

    def denied(request: web.Request) -> bool:
        return not tokens.allows(request.headers.get("Authorization"))

    async def prometheus(request: web.Request) -> web.Response:
        if denied(request):
            return _json(DENIED, 401)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def query(request: web.Request) -> web.Response:
        if denied(request):
            return _json(DENIED, 401)
        if store is None:
            return _json(NO_STORE, 404)
        try:
            payload = await request.json()
            sql = payload["sql"]
            parameters = payload.get("parameters") or None
        except (json.JSONDecodeError, KeyError, TypeError):
            return _json({"error": 'body must be JSON: {"sql": "...", "parameters": {...}}'}, 400)
        try:
            result = await asyncio.to_thread(store.query_readonly, sql, parameters, max_rows)
        except ReadOnlyViolation as exc:
            return _json({"error": str(exc)}, 403)
        except Exception as exc:
            return _json({"error": f"{type(exc).__name__}: {exc}"}, 400)
        return _json({"columns": result.columns, "rows": result.rows})

    reviews = StoreReviews(store) if store is not None else None

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

    application = web.Application()
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/readyz", readyz)
    application.router.add_get("/metrics", prometheus)
    application.router.add_post("/api/query", query)
    application.router.add_get("/api/flags", flags)
    application.router.add_get("/api/flags/records", records)
    application.router.add_post("/api/reviews", review)
    return application
