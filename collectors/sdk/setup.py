"""`instrument()`: the one call that connects an app to Watchkeeper.

It builds an OpenTelemetry TracerProvider that batches spans in the background and sends
them with the stock OTLP exporter to the sidecar, makes it the global provider, and patches
the openai client; a LoggerProvider beside it sends the app's own evaluations
(`evaluation()`) the same way. The model call never waits for telemetry: spans go into a
bounded queue that a worker thread drains, and a sidecar that is down costs dropped spans
(after the exporter's retries), never an exception or a delay in the app.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Literal, get_args
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.util.types import AttributeValue

from . import tracing
from .openai import is_patched, patch_openai, unpatch_openai

logger = logging.getLogger(__name__)

OtlpProtocol = Literal["http/protobuf", "grpc"]
DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_GRPC_ENDPOINT = "http://127.0.0.1:4317"
TRACES_PATH = "/v1/traces"
LOGS_PATH = "/v1/logs"

_lock = threading.Lock()
_current: Instrumentation | None = None


class Instrumentation:
    """What `instrument()` set up, and the handles to take it down again."""

    def __init__(self, tracer_provider: TracerProvider, settings: tracing.Settings,
                 logger_provider: LoggerProvider) -> None:
        self.tracer_provider = tracer_provider
        self.logger_provider = logger_provider
        self._settings = settings
        self._closed = False

    @property
    def capture_content(self) -> bool:
        return self._settings.capture_content

    @property
    def openai_instrumented(self) -> bool:
        """Whether the openai client is currently wrapped."""
        return is_patched()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export what is queued now (e.g. before a serverless function freezes)."""
        spans = self.tracer_provider.force_flush(timeout_millis)
        return self.logger_provider.force_flush(timeout_millis) and spans

    def uninstrument(self) -> None:
        """Restore the original openai methods; `llm_call` and `feedback` keep working."""
        unpatch_openai()

    def shutdown(self) -> None:
        """Uninstrument, flush queued spans and stop the exporter; safe to call twice.

        After this, `instrument()` may be called again. A provider that was made global
        stays global (OpenTelemetry allows setting it once per process).
        """
        global _current
        with _lock:
            if self._closed:
                return
            self._closed = True
            if _current is self:
                _current = None
        self.uninstrument()
        tracing.deactivate(self._settings)
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


def instrument(
    service_name: str,
    endpoint: str = DEFAULT_ENDPOINT,
    *,
    protocol: OtlpProtocol = "http/protobuf",
    capture_content: bool = True,
    token: str | None = None,
    environment: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    instrument_openai: bool = True,
    set_global: bool = True,
    span_processor: SpanProcessor | None = None,
    log_processor: LogRecordProcessor | None = None,
) -> Instrumentation:
    """Send this app's GenAI spans to Watchkeeper; returns handles to flush and undo it.

    `endpoint` is the sidecar's OTLP base URL: HTTP posts to `endpoint + /v1/traces`; gRPC
    dials host:port (plaintext for http:// and bare host:port, TLS for https://; the default
    endpoint moves to port 4317). `token` is sent as `Authorization: Bearer <token>`.
    `capture_content=False` keeps prompts and completions out of spans. `span_processor`
    replaces the OTLP batch pipeline: a seam for tests and for sending spans elsewhere;
    `log_processor` does the same for the evaluation events of `evaluation()`.

    Calling it again while an instrumentation is active returns that one unchanged (and
    never wraps openai twice); call `.shutdown()` first to reconfigure.
    """
    global _current
    if protocol not in get_args(OtlpProtocol):
        raise ValueError(f"instrument: protocol must be one of {get_args(OtlpProtocol)}, "
                         f"not {protocol!r}")
    if not isinstance(service_name, str) or not service_name:
        raise ValueError("instrument: service_name must be a non-empty string")
    with _lock:
        if _current is not None:
            logger.warning("watchkeeper: instrument() called again; keeping the active "
                           "instrumentation (call .shutdown() first to reconfigure)")
            if instrument_openai:
                patch_openai()
            return _current
        resource = _resource(service_name, environment, resource_attributes)
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(
            span_processor or BatchSpanProcessor(_exporter(endpoint, protocol, token))
        )
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(
            log_processor or BatchLogRecordProcessor(_log_exporter(endpoint, protocol, token))
        )
        if set_global:
            _set_global(provider)
        settings = tracing.Settings(
            tracer=provider.get_tracer(tracing.SCOPE_NAME, tracing.SCOPE_VERSION),
            capture_content=capture_content,
            logger=logger_provider.get_logger(tracing.SCOPE_NAME, tracing.SCOPE_VERSION),
        )
        tracing.activate(settings)
        if instrument_openai and not patch_openai():
            logger.info("watchkeeper: openai is not installed; use llm_call for model calls")
        _current = Instrumentation(provider, settings, logger_provider)
        return _current


def _resource(
    service_name: str,
    environment: str | None,
    extra: Mapping[str, AttributeValue] | None,
) -> Resource:
    """service.name, the deployment environment (new and old keys), then the caller's own.

    `Resource.create` also merges OTEL_RESOURCE_ATTRIBUTES, which is how the Helm chart
    hands the pod's Kubernetes names to the app.
    """
    attrs: dict[str, AttributeValue] = {"service.name": service_name}
    if environment:
        attrs["deployment.environment.name"] = environment
        attrs["deployment.environment"] = environment
    attrs.update(extra or {})
    return Resource.create(attrs)


def _exporter(endpoint: str, protocol: OtlpProtocol, token: str | None) -> SpanExporter:
    headers = {"authorization": f"Bearer {token}"} if token else None
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=traces_url(endpoint), headers=headers)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    host, insecure = _grpc_target(endpoint)
    return GrpcExporter(endpoint=host, insecure=insecure, headers=headers)


def _log_exporter(endpoint: str, protocol: OtlpProtocol, token: str | None
                  ) -> LogRecordExporter:
    headers = {"authorization": f"Bearer {token}"} if token else None
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import (
            OTLPLogExporter as HttpExporter,
        )

        base = endpoint.rstrip("/").removesuffix(TRACES_PATH)
        return HttpExporter(endpoint=base + LOGS_PATH, headers=headers)
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
        OTLPLogExporter as GrpcExporter,
    )

    host, insecure = _grpc_target(endpoint)
    return GrpcExporter(endpoint=host, insecure=insecure, headers=headers)


def _grpc_target(endpoint: str) -> tuple[str, bool]:
    """host:port to dial, and whether in plaintext (http:// and bare host:port)."""
    if endpoint == DEFAULT_ENDPOINT:
        endpoint = DEFAULT_GRPC_ENDPOINT
    url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    return url.netloc, url.scheme != "https"


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint (a full traces URL is kept as it is)."""
    base = endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def _set_global(provider: TracerProvider) -> None:
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    else:
        logger.warning("watchkeeper: a global TracerProvider is already set; keeping it. "
                       "Watchkeeper's own spans still go to the sidecar.")
