"""The agent's own HTTP API: health, readiness, Prometheus metrics and read-only SQL over the
store (chDB lets one process own the store, so other commands ask this one)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from watchkeeper.agent.auth import TokenCheck
from watchkeeper.agent.store.client import ReadOnlyViolation, Store

Readiness = Callable[[], dict[str, Any]]


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

    async def prometheus(request: web.Request) -> web.Response:
        if not tokens.allows(request.headers.get("Authorization")):
            return _json({"error": "missing or invalid bearer token"}, 401)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def query(request: web.Request) -> web.Response:
        if not tokens.allows(request.headers.get("Authorization")):
            return _json({"error": "missing or invalid bearer token"}, 401)
        if store is None:
            return _json({"error": "this process does not own a store"}, 404)
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

    application = web.Application()
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/readyz", readyz)
    application.router.add_get("/metrics", prometheus)
    application.router.add_post("/api/query", query)
    return application
