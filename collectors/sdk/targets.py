"""Which earlier call a judgment is about (feedback, an evaluation): an `llm_call`, a Span or a
SpanContext, or its hex trace id (+ span id) when the judgment comes in a later request or
another process."""

from __future__ import annotations

import re
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags


def judged_call(trace_id: str | None, span_id: str | None, call: Any, what: str) -> SpanContext:
    """The judged call's span context; its span id is 0 when only the trace is known."""
    if call is not None:
        if trace_id is not None or span_id is not None:
            raise ValueError(f"{what}: pass either call or trace_id/span_id, not both")
        context = _context_of(call, what)
        if not context.is_valid:
            raise ValueError(f"{what}: the call has no valid span context (was it traced?)")
        return context
    if trace_id is None:
        if span_id is not None:
            raise ValueError(f"{what}: span_id needs the trace_id it belongs to")
        raise ValueError(f"{what}: say which call it is about: call=... or trace_id=...")
    return SpanContext(
        trace_id=_hex_id(trace_id, 32, "trace_id", what),
        span_id=_hex_id(span_id, 16, "span_id", what) if span_id is not None else 0,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


def _context_of(call: Any, what: str) -> SpanContext:
    if isinstance(call, SpanContext):
        return call
    if isinstance(call, trace.Span):
        return call.get_span_context()
    try:
        context = call.span_context  # LLMCall, GenAISpan
    except RuntimeError as exc:
        raise ValueError(f"{what}: {exc}") from exc
    except AttributeError:
        context = None
    if not isinstance(context, SpanContext):
        raise ValueError(f"{what}: call must be an llm_call, a Span or a SpanContext, "
                         f"not {type(call).__name__}")
    return context


def _hex_id(value: str, digits: int, name: str, what: str) -> int:
    text = value.strip().lower() if isinstance(value, str) else ""
    number = int(text, 16) if re.fullmatch(f"[0-9a-f]{{{digits}}}", text) else 0
    if number == 0:
        raise ValueError(f"{what}: {name} must be {digits} hex digits, not all zero: {value!r}")
    return number
