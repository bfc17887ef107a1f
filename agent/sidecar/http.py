"""OTLP/HTTP receiver (:4318): POST /v1/traces and /v1/logs, protobuf or JSON, gzip or not."""

from __future__ import annotations

import functools

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from grpc import StatusCode

from watchkeeper.agent import metrics
from watchkeeper.agent.auth import TokenCheck
from watchkeeper.agent.sidecar import otlp_codec
from watchkeeper.agent.sidecar.pipeline import Pipeline, Unavailable
from watchkeeper.agent.sidecar.signals import SIGNALS, Signal

RETRY_AFTER_S = "2"


def app(pipeline: Pipeline, tokens: TokenCheck, max_body_bytes: int) -> web.Application:
    async def handle(request: web.Request, signal: Signal) -> web.Response:
        content_type = request.headers.get("Content-Type", "")
        if not tokens.allows(request.headers.get("Authorization")):
            metrics.UNAUTHORIZED.labels("http").inc()
            return _error(401, StatusCode.UNAUTHENTICATED, "missing or invalid bearer token",
                          content_type)
        try:
            try:
                # aiohttp inflates gzip/deflate bodies, holding the inflated size to the limit
                body = await request.read()
            except RequestPayloadError as exc:
                encoding = request.headers.get("Content-Encoding", "")
                raise otlp_codec.BadRequest(f"body is not valid {encoding}: {exc}") from exc
            export = otlp_codec.decode(body, content_type, signal.request)
            response = await pipeline.export(export, "http")
        except otlp_codec.BadRequest as exc:
            metrics.BAD_REQUESTS.labels("http").inc()
            return _error(400, StatusCode.INVALID_ARGUMENT, str(exc), content_type)
        except Unavailable as exc:
            return _error(503, StatusCode.UNAVAILABLE, f"cannot forward now: {exc}",
                          content_type, {"Retry-After": RETRY_AFTER_S})
        data, media = otlp_codec.encode(response, content_type)
        return web.Response(body=data, content_type=media)

    application = web.Application(client_max_size=max_body_bytes)
    for signal in SIGNALS:
        application.router.add_post(f"/v1/{signal.name}", functools.partial(handle, signal=signal))
    return application


def _error(http_status: int, code: StatusCode, text: str, content_type: str,
           headers: dict[str, str] | None = None) -> web.Response:
    data, media = otlp_codec.status(code.value[0], text, content_type)
    return web.Response(status=http_status, body=data, content_type=media, headers=headers)


async def serve(application: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(application, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (port 0 asks the OS for a free one)."""
    return int(runner.addresses[0][1])

