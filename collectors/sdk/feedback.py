"""End-user feedback on an earlier model call, as a span in that call's trace.

Thumbs and scores are the cheapest ground truth a monitoring system gets. Sending them as a
short span (rather than through a side channel) means they travel the same OTLP pipeline,
get the same redaction and auth, and land next to the call they judge: the span is a child of
the call's span, linked to it, and names it in `watchkeeper.feedback.trace_id` / `span_id`.
Feedback often arrives in a later request, even another process: the hex ids are enough.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from . import semconv
from .context import current_conversation
from .tracing import current

Thumbs = Literal["up", "down"]

SPAN_NAME = "gen_ai.feedback"
TRACE_ID = "watchkeeper.feedback.trace_id"
SPAN_ID = "watchkeeper.feedback.span_id"
SCORE = "watchkeeper.feedback.score"
THUMBS = "watchkeeper.feedback.thumbs"
COMMENT = "watchkeeper.feedback.comment"

_THUMB_SCORES: dict[str, float] = {"up": 1.0, "down": 0.0}


def feedback(
    *,
    trace_id: str | None = None,
    span_id: str | None = None,
    call: Any = None,
    score: float | None = None,
    thumbs: Thumbs | None = None,
    comment: str | None = None,
    user_id: str | None = None,
) -> SpanContext:
    """Record an end user's verdict about an earlier call; returns the feedback span's context.

    Name the call by `call` (an `llm_call`, a Span or a SpanContext) or by its hex
    `trace_id` (+ `span_id`). Give a `score` in [0, 1], or `thumbs` ("up" = 1.0, "down" = 0.0),
    or both. With a trace id but no span id the span cannot join that trace; it starts its
    own and still names the target trace in its attributes.
    Raises ValueError on arguments that would record nothing useful.
    """
    target = _target(trace_id, span_id, call)
    value = _score(score, thumbs)
    if comment is not None and not isinstance(comment, str):
        raise ValueError("feedback: comment must be a string")
    ambient = current_conversation()
    attrs: semconv.Attributes = {
        TRACE_ID: trace.format_trace_id(target.trace_id),
        # Always present (empty when only the trace is known): it marks the span as feedback.
        SPAN_ID: trace.format_span_id(target.span_id) if target.span_id else "",
        SCORE: value,
    }
    if thumbs is not None:
        attrs[THUMBS] = thumbs
    if comment:
        attrs[COMMENT] = comment
    attrs.update(semconv.context_attributes(ambient.conversation_id, user_id or ambient.user_id))

    parent = None
    links: list[Link] = []
    if target.is_valid:
        parent = trace.set_span_in_context(NonRecordingSpan(target))
        links.append(Link(target))
    span = current().tracer.start_span(
        SPAN_NAME, context=parent, kind=SpanKind.INTERNAL, attributes=attrs, links=links
    )
    span.end()
    return span.get_span_context()


def _target(trace_id: str | None, span_id: str | None, call: Any) -> SpanContext:
    """The judged call's span context; its span id is 0 when only the trace is known."""
    if call is not None:
        if trace_id is not None or span_id is not None:
            raise ValueError("feedback: pass either call or trace_id/span_id, not both")
        context = _context_of(call)
        if not context.is_valid:
            raise ValueError("feedback: the call has no valid span context (was it traced?)")
        return context
    if trace_id is None:
        if span_id is not None:
            raise ValueError("feedback: span_id needs the trace_id it belongs to")
        raise ValueError("feedback: say which call it is about: call=... or trace_id=...")
    return SpanContext(
        trace_id=_hex_id(trace_id, 32, "trace_id"),
        span_id=_hex_id(span_id, 16, "span_id") if span_id is not None else 0,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


def _context_of(call: Any) -> SpanContext:
    if isinstance(call, SpanContext):
        return call
    if isinstance(call, trace.Span):
        return call.get_span_context()
    try:
        context = call.span_context  # LLMCall, GenAISpan
    except RuntimeError as exc:
        raise ValueError(f"feedback: {exc}") from exc
    except AttributeError:
        context = None
    if not isinstance(context, SpanContext):
        raise ValueError("feedback: call must be an llm_call, a Span or a SpanContext, "
                         f"not {type(call).__name__}")
    return context


def _hex_id(value: str, digits: int, name: str) -> int:
    text = value.strip().lower() if isinstance(value, str) else ""
    number = int(text, 16) if re.fullmatch(f"[0-9a-f]{{{digits}}}", text) else 0
    if number == 0:
        raise ValueError(f"feedback: {name} must be {digits} hex digits, not all zero: {value!r}")
    return number


def _score(score: float | None, thumbs: str | None) -> float:
    if thumbs is not None and thumbs not in _THUMB_SCORES:
        raise ValueError(f"feedback: thumbs must be 'up' or 'down', not {thumbs!r}")
    if score is None:
        if thumbs is None:
            raise ValueError("feedback: give a score (0..1) or thumbs ('up'/'down')")
        return _THUMB_SCORES[thumbs]
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise ValueError(f"feedback: score must be a finite number, not {score!r}")
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"feedback: score must lie in [0, 1] (scale ratings first), not {score}")
    return float(score)
