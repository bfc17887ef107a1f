"""OTLP/gRPC receiver (:4317): the trace and logs services. Requests arrive as raw bytes so that
a malformed one is answered INVALID_ARGUMENT with the reason, like the HTTP side's 400.

The body limit is grpc's max_receive_message_length. grpc core checks it on the message as
received and again while inflating a compressed one: it inflates into a buffer capped at the
limit and answers RESOURCE_EXHAUSTED ("Decompressed message larger than max") once the output
passes it, before the handler runs (grpcio 1.85: a 64 MiB gzip bomb against a 4 MiB limit
raised the server's peak RSS by about 5 MB; tests/test_hostile_otlp.py measures it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from watchkeeper.agent import metrics
from watchkeeper.agent.auth import TokenCheck
from watchkeeper.agent.sidecar import otlp_codec
from watchkeeper.agent.sidecar.pipeline import Pipeline, Unavailable
from watchkeeper.agent.sidecar.signals import SIGNALS, Signal

Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


def _handler(pipeline: Pipeline, tokens: TokenCheck, signal: Signal) -> Handler:
    async def export(body: bytes, context: grpc.aio.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata() or ())
        if not tokens.allows(metadata.get("authorization")):
            metrics.UNAUTHORIZED.labels("grpc").inc()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
        try:
            request = otlp_codec.decode(body, otlp_codec.PROTOBUF, signal.request)
        except otlp_codec.BadRequest as exc:
            metrics.BAD_REQUESTS.labels("grpc").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            response = await pipeline.export(request, "grpc")
        except Unavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot forward now: {exc}")
        return bytes(response.SerializeToString())

    return export


async def serve(pipeline: Pipeline, tokens: TokenCheck, host: str, port: int,
                max_body_bytes: int) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", max_body_bytes)])
    for signal in SIGNALS:
        method = grpc.unary_unary_rpc_method_handler(_handler(pipeline, tokens, signal))
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(signal.service, {"Export": method}),))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound
