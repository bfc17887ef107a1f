"""The lifecycle of one GenAI CLIENT span: start with the request, add the response, end once.

Shared by the openai wrapper and `llm_call`, so that both name, fill, fail and end spans the
same way. Every method swallows its own failures (logged at debug level): a bug in telemetry
must never turn into an exception in the app's model call. Ending is idempotent and
thread-safe, because a stream may be finished by iteration, `close()` and the garbage
collector, possibly on different threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import semconv
from .context import current_conversation
from .tracing import Settings

logger = logging.getLogger(__name__)


class GenAISpan:
    """One model call on the wire, as a span in the latest GenAI conventions."""

    def __init__(
        self,
        settings: Settings,
        *,
        operation: str,
        provider: str,
        model: str | None,
        params: Mapping[str, Any] | None = None,
        messages: Iterable[Any] | None = None,
        system: Any = None,
        conversation_id: str | None = None,
        user_id: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        content_attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """Start the span (not made current: callers decide how long it is current).

        `messages` is the chat history (OpenAI style or latest schema); `system` is extra
        system instructions given apart from it (a string or content parts).
        `attributes` are extra request attributes; `content_attributes` are extra ones that
        carry prompt content, dropped when content capture is off.
        """
        self.capture_content = settings.capture_content
        self._lock = threading.Lock()
        self._ended = False
        try:
            attrs = _request_attributes(
                operation, provider, model, params, conversation_id, user_id, attributes)
        except Exception:
            logger.debug("watchkeeper: could not build request attributes", exc_info=True)
            attrs = {semconv.OPERATION_NAME: operation, semconv.PROVIDER_NAME: provider}
        if self.capture_content:
            try:
                instructions, inputs = semconv.input_messages(messages)
                attrs.update(semconv.content_attributes(
                    system=[*semconv.content_parts(system), *instructions], inputs=inputs))
                attrs.update({k: v for k, v in (content_attributes or {}).items() if v})
            except Exception:
                logger.debug("watchkeeper: could not convert input messages", exc_info=True)
        self.span = settings.tracer.start_span(
            semconv.span_name(operation, model), kind=SpanKind.CLIENT, attributes=attrs
        )

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def span_context(self) -> trace.SpanContext:
        return self.span.get_span_context()

    def respond(
        self,
        *,
        output_messages: Sequence[semconv.Message] | None = None,
        attributes: Mapping[str, Any] | None = None,
        **response: Any,
    ) -> None:
        """Record the response; `response` takes `semconv.response_attributes` keywords."""
        if self._ended:
            return
        try:
            attrs = semconv.response_attributes(**response)
            attrs.update({k: v for k, v in (attributes or {}).items() if v is not None})
            if self.capture_content and output_messages:
                attrs.update(semconv.content_attributes(outputs=output_messages))
            self.span.set_attributes(attrs)
        except Exception:
            logger.debug("watchkeeper: could not record a response", exc_info=True)

    def fail(self, exc: BaseException) -> None:
        """Mark the call failed: ERROR status, `error.type`, and the exception as an event."""
        if self._ended:
            return
        try:
            self.span.set_attributes(semconv.error_attributes(exc))
            self.span.record_exception(exc, escaped=True)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        except Exception:
            logger.debug("watchkeeper: could not record an error", exc_info=True)

    def end(self) -> None:
        """End the span once; later calls do nothing."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:
            self.span.end()
        except Exception:
            logger.debug("watchkeeper: could not end a span", exc_info=True)


def _request_attributes(
    operation: str,
    provider: str,
    model: str | None,
    params: Mapping[str, Any] | None,
    conversation_id: str | None,
    user_id: str | None,
    extra: Mapping[str, Any] | None,
) -> semconv.Attributes:
    ambient = current_conversation()
    attrs = semconv.request_attributes(
        operation=operation, provider=provider, model=model, params=params or {}
    )
    attrs.update(semconv.context_attributes(
        conversation_id or ambient.conversation_id, user_id or ambient.user_id))
    attrs.update({k: v for k, v in (extra or {}).items() if v is not None})
    return attrs
