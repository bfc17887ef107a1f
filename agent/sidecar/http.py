"""OTLP/HTTP receiver (:4318): POST /v1/traces and /v1/logs, protobuf or JSON, gzip or not.

The body limit applies to the body as decoded: the receiver reads the raw body in chunks and
inflates it itself (aiohttp's own inflating is off for this app), stopping with 413 as soon as
the output passes the limit, so a small gzip bomb costs no more memory than the limit.
"""

from __future__ import annotations

import asyncio
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
# Bodies over this are decoded on a worker thread, so one large export (a 31 MB JSON body takes
# ~8 s in protobuf's pure-Python JSON parser) does not hold the event loop that answers others.
DECODE_INLINE_BYTES = 256 * 1024
# Set on an application that reads raw request bodies: its runner leaves them compressed.
RAW_BODIES = web.AppKey("raw_bodies", bool)


def app(pipeline: Pipeline, tokens: TokenCheck, max_body_bytes: int) -> web.Application:
    async def handle(request: web.Request, signal: Signal) -> web.Response:
        content_type = request.headers.get("Content-Type", "")
        if not tokens.allows(request.headers.get("Authorization")):
            metrics.UNAUTHORIZED.labels("http").inc()
            return _error(401, StatusCode.UNAUTHENTICATED, "missing or invalid bearer token",
                          content_type)
        try:
            otlp_codec.media_type(content_type)  # before reading a body that cannot be used
            body = await _read(request, max_body_bytes)
            if len(body) > DECODE_INLINE_BYTES:  # large JSON takes seconds in pure Python
                export = await asyncio.to_thread(otlp_codec.decode, body, content_type,
                                                 signal.request)
            else:
                export = otlp_codec.decode(body, content_type, signal.request)
        except otlp_codec.TooLarge as exc:
            metrics.BAD_REQUESTS.labels("http").inc()
            return _error(413, StatusCode.RESOURCE_EXHAUSTED, str(exc), content_type)
        except otlp_codec.BadRequest as exc:
            metrics.BAD_REQUESTS.labels("http").inc()
            return _error(400, StatusCode.INVALID_ARGUMENT, str(exc), content_type)
        try:
            response = await pipeline.export(export, "http")
        except Unavailable as exc:
            return _error(503, StatusCode.UNAVAILABLE, f"cannot forward now: {exc}",
                          content_type, {"Retry-After": RETRY_AFTER_S})
        data, media = otlp_codec.encode(response, content_type)
        return web.Response(body=data, content_type=media)

    application = web.Application(client_max_size=max_body_bytes)
    application[RAW_BODIES] = True
    for signal in SIGNALS:
        application.router.add_post(f"/v1/{signal.name}", functools.partial(handle, signal=signal))
    return application


async def _read(request: web.Request, limit: int) -> bytearray:
    """The body, inflated as it arrives and refused (TooLarge) once past `limit`."""
    inflater = otlp_codec.Inflater(request.headers.get("Content-Encoding", ""), limit)
    if request.content_length is not None and request.content_length > limit:
        raise otlp_codec.TooLarge(f"body of {request.content_length} bytes exceeds the limit "
                                  f"of {limit} bytes")
    try:
        async for chunk in request.content.iter_any():
            inflater.feed(chunk)
    except RequestPayloadError as exc:  # e.g. broken chunked transfer encoding
        raise otlp_codec.BadRequest(f"body cannot be read: {exc}") from exc
    return inflater.body()


def _error(http_status: int, code: StatusCode, text: str, content_type: str,
           headers: dict[str, str] | None = None) -> web.Response:
    data, media = otlp_codec.status(code.value[0], text, content_type)
    return web.Response(status=http_status, body=data, content_type=media, headers=headers)


async def serve(application: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(application, access_log=None, shutdown_timeout=5.0,
                           auto_decompress=not application.get(RAW_BODIES, False))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (port 0 asks the OS for a free one)."""
    return int(runner.addresses[0][1])

