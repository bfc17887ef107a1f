"""End-user feedback on an earlier model call, as a span in that call's trace.

Thumbs and scores are the cheapest ground truth a monitoring system gets. Sending them as a
short span (rather than through a side channel) means they travel the same OTLP pipeline,
get the same redaction and auth, and land next to the call they judge: the span is a child of
the call's span, linked to it, and names it in `watchkeeper.feedback.trace_id` / `span_id`.
Feedback often arrives in a later request, even another process: the hex ids are enough.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind

from . import semconv
from .context import current_conversation
from .targets import judged_call
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
    target = judged_call(trace_id, span_id, call, "feedback")
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
