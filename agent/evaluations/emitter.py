"""Sends evaluation events over OTLP/HTTP with the OpenTelemetry SDK's own log pipeline: a
bounded queue (the oldest records are dropped when it is full, so the watch service never
waits on a slow collector), batches, and the exporter's retries with backoff."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from watchkeeper.agent import metrics
from watchkeeper.agent.config import EvaluationExportConfig
from watchkeeper.agent.evaluations.events import EvaluationResult
from watchkeeper.collectors.evaluation_event import EVENT_NAME

log = logging.getLogger(__name__)
SCOPE = "watchkeeper.evaluations"


def _version() -> str:
    try:
        return version("watchkeeper")
    except PackageNotFoundError:
        return "0"


class EvaluationEmitter:
    def __init__(self, config: EvaluationExportConfig) -> None:
        if config.endpoint is None:
            raise ValueError("evaluations.export.endpoint is not set")
        headers = ({"Authorization": f"Bearer {config.token.get_secret_value()}"}
                   if config.token else None)
        exporter = OTLPLogExporter(endpoint=f"{config.endpoint}/v1/logs", headers=headers,
                                   timeout=config.timeout_s)
        self._provider = LoggerProvider(resource=Resource.create(
            {"service.name": "watchkeeper", "service.version": _version()}))
        self._provider.add_log_record_processor(BatchLogRecordProcessor(
            exporter, schedule_delay_millis=config.schedule_delay_ms,
            max_export_batch_size=config.max_batch, max_queue_size=config.max_queue_size))
        self._logger = self._provider.get_logger(SCOPE, _version())
        self.endpoint = config.endpoint

    def emit(self, results: Iterable[EvaluationResult], source: str) -> int:
        """Queue the records (returns how many); sending happens on the SDK's thread."""
        count = 0
        for result in results:
            parent = SpanContext(int(result.trace_id, 16), int(result.span_id, 16),
                                 is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
            self._logger.emit(timestamp=int(result.ts.timestamp() * 1e9),
                              context=trace.set_span_in_context(NonRecordingSpan(parent)),
                              event_name=EVENT_NAME, attributes=result.attributes())
            count += 1
        metrics.EVALUATIONS_EMITTED.labels(source=source).inc(count)
        return count

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (up to the timeout), then stop the exporter."""
        if not self._provider.force_flush(int(timeout_s * 1000)):
            log.warning("evaluation events not all sent before shutdown",
                        extra={"endpoint": self.endpoint})
        self._provider.shutdown()
