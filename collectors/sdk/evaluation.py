"""An application's own evaluation of an earlier call, as an OpenTelemetry GenAI evaluation
event (`gen_ai.evaluation.result`): a log record parented to the judged call's span, so that
Watchkeeper stores it in `scores` next to its watchers' (docs/evaluations.md) and any other
OpenTelemetry backend reads it the same way. The counterpart of `feedback()`, which records
what an end user said; this records what a check, a judge or a test said."""

from __future__ import annotations

import math
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan

from ..evaluation_event import (
    ERROR_TYPE,
    EVALUATOR_ID,
    EVALUATOR_TYPE,
    EVENT_NAME,
    EXPLANATION,
    NAME,
    SCORE_LABEL,
    SCORE_VALUE,
)
from .targets import judged_call
from .tracing import current


def evaluation(
    call: Any = None,
    *,
    name: str,
    score: float | None = None,
    label: str | None = None,
    explanation: str | None = None,
    evaluator: str | None = None,
    evaluator_type: str | None = None,
    error_type: str | None = None,
    trace_id: str | None = None,
    span_id: str | None = None,
) -> None:
    """Record that `name` (what was measured: "faithfulness", "toxicity") of the call scored
    `score` (a number, higher = more of it) and/or `label` (low-cardinality: "pass", "fail").

    Name the call by `call` (an `llm_call`, a Span or a SpanContext) or by its hex `trace_id`
    and `span_id`. `evaluator` and `evaluator_type` ("llm_judge", "classifier", "heuristic",
    "human") say who judged; `error_type` records an evaluation that failed. Raises
    ValueError on arguments that would record nothing useful. Sent with the app's telemetry
    (batched, never blocking) once `instrument()` has run; a no-op before it.
    """
    target = judged_call(trace_id, span_id, call, "evaluation")
    if not target.span_id:
        raise ValueError("evaluation: the span id of the judged call is needed (an evaluation "
                         "event is parented to the call's span)")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("evaluation: name must be a non-empty string")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)
                              or not math.isfinite(score)):
        raise ValueError(f"evaluation: score must be a finite number, not {score!r}")
    if score is None and label is None and error_type is None:
        raise ValueError("evaluation: give a score, a label or an error_type")
    attrs: dict[str, str | float] = {NAME: name}
    optional: dict[str, str | float | None] = {
        SCORE_VALUE: float(score) if score is not None else None,
        SCORE_LABEL: label,
        EXPLANATION: explanation,
        EVALUATOR_ID: evaluator,
        EVALUATOR_TYPE: evaluator_type,
        ERROR_TYPE: error_type,
    }
    attrs.update({k: v for k, v in optional.items() if v is not None})
    logger = current().logger
    if logger is None:
        return
    logger.emit(event_name=EVENT_NAME, attributes=attrs,
                context=trace.set_span_in_context(NonRecordingSpan(target)))
