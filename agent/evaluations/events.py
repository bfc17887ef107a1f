"""`gen_ai.evaluation.result` (OpenTelemetry semantic conventions for GenAI, v1.38.0, status
Development): a log record parented to the evaluated span, with the evaluation's name, score
value and label, explanation and `error.type`. The evaluator's identity follows the open
proposal (`gen_ai.evaluation.evaluator.*`); what the convention has no name for yet is under
`watchkeeper.evaluation.*`. docs/evaluations.md has the mapping."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from watchkeeper.agent.config import EvaluationReceiveConfig
from watchkeeper.agent.store.tables import FlagRow, ReviewRow, ScoreRow, flag_id
from watchkeeper.collectors.evaluation_event import (
    ERROR_TYPE,
    EVALUATOR_ID,
    EVALUATOR_TYPE,
    EVENT_NAME,
    EXPLANATION,
    NAME,
    SCORE_LABEL,
    SCORE_VALUE,
)
from watchkeeper.collectors.evaluation_event import EVALUATOR_VERSION as PROPOSED_VERSION
from watchkeeper.collectors.normalise.otlp import LogView
from watchkeeper.collectors.normalise.sample import sample_id_for

EVALUATOR_VERSION = "watchkeeper.evaluation.evaluator.version"
EVALUATOR_VERSION_PROPOSED = PROPOSED_VERSION  # read, as proposed
THRESHOLD = "watchkeeper.evaluation.threshold"
FLAGGED = "watchkeeper.evaluation.flagged"
FIELD = "watchkeeper.evaluation.field"
SAMPLE_ID = "watchkeeper.sample_id"

EvaluatorType = Literal["llm_judge", "classifier", "heuristic", "human"]
# A watcher kind's evaluator type; kinds not named here are trained classifiers.
KIND_TYPES: dict[str, EvaluatorType] = {"llm_judge": "llm_judge", "heuristics": "heuristic"}
HEX = r"^[0-9a-f]+$"


class EvaluationResult(BaseModel):
    """One evaluation of one field of one LLM call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="what was measured: the watcher's label")
    trace_id: str = Field(pattern=HEX, min_length=32, max_length=32)
    span_id: str = Field(pattern=HEX, min_length=16, max_length=16)
    ts: datetime
    score: float | None = None
    label: str | None = Field(None, description="pass or fail, against the threshold")
    explanation: str | None = None
    error_type: str | None = None
    evaluator_id: str
    evaluator_type: EvaluatorType
    evaluator_version: str
    threshold: float | None = None
    flagged: bool | None = None
    field: str = ""
    sample_id: str = ""

    def attributes(self) -> dict[str, str | float | bool]:
        attrs: dict[str, str | float | bool] = {
            NAME: self.name, EVALUATOR_ID: self.evaluator_id,
            EVALUATOR_TYPE: self.evaluator_type, EVALUATOR_VERSION: self.evaluator_version}
        optional: dict[str, str | float | bool | None] = {
            SCORE_VALUE: self.score, SCORE_LABEL: self.label, EXPLANATION: self.explanation,
            ERROR_TYPE: self.error_type, THRESHOLD: self.threshold, FLAGGED: self.flagged,
            FIELD: self.field or None, SAMPLE_ID: self.sample_id or None}
        attrs.update({k: v for k, v in optional.items() if v is not None})
        return attrs


def from_score(row: ScoreRow, trace_id: str, span_id: str, kind: str) -> EvaluationResult:
    """A watcher's score row as an evaluation of the sample's span. A failed score is an
    evaluation with `error.type` and no value."""
    common = {"trace_id": trace_id, "span_id": span_id, "ts": row.ts,
              "evaluator_id": row.watcher, "evaluator_version": row.version,
              "evaluator_type": KIND_TYPES.get(kind, "classifier"), "field": row.field,
              "sample_id": str(row.sample_id)}
    if row.error:
        return EvaluationResult(name=row.watcher, error_type="watcher_error",
                                explanation=row.error[:500], **common)
    label = None if row.threshold is None else ("fail" if row.flagged else "pass")
    explanation = (f"{row.label} {row.score:.3f} >= {row.threshold:g} on {row.field}"
                   if row.flagged and row.threshold is not None else None)
    return EvaluationResult(name=row.label, score=row.score, label=label,
                            explanation=explanation, threshold=row.threshold,
                            flagged=row.flagged, **common)


REVIEWER = "review"  # a verdict's evaluator id: who reviewed is not sent out


def from_review(row: ReviewRow, trace_id: str, span_id: str) -> EvaluationResult:
    """A human verdict on a flag: confirmed (the sample has it: 1.0, fail) or rejected (a false
    alarm: 0.0, pass); the reviewer's note is the explanation."""
    confirmed = row.verdict == "confirmed"
    return EvaluationResult(
        name=row.label, trace_id=trace_id, span_id=span_id, ts=row.ts,
        score=1.0 if confirmed else 0.0, label="fail" if confirmed else "pass",
        explanation=row.note or None, evaluator_id=REVIEWER, evaluator_type="human",
        evaluator_version="1", flagged=confirmed,
        sample_id=str(row.sample_id) if row.sample_id else "")


# -- in: events that applications and other evaluators send --------------------------------
EVENT_SOURCE = "event"  # scores.source of what arrived as an event
NAME_CHARS = 200  # names, ids and versions past this are cut: they are low-cardinality keys
# Timestamps outside this range of the arrival are taken as the arrival (the store's
# DateTime64 and its TTL would refuse or drop them).
MAX_AGE, MAX_AHEAD = timedelta(days=365), timedelta(days=1)
UNSET_SPAN = "0" * 16


def is_evaluation(log: LogView) -> bool:
    return log.event_name == EVENT_NAME


def from_log(log: LogView, config: EvaluationReceiveConfig
             ) -> tuple[ScoreRow, FlagRow | None] | None:
    """A received `gen_ai.evaluation.result` as a `scores` row of the evaluated call's sample
    (and a flag when its name has a threshold the score reaches); None when it names no span
    (only a `gen_ai.response.id`: not joined yet), has no name, or neither a value nor an
    error."""
    attrs = log.attributes
    name = _text(attrs.get(NAME))[:NAME_CHARS]
    if not name or not log.span_id or log.span_id == UNSET_SPAN or not log.trace_id.strip("0"):
        return None
    sample_id = sample_id_for(log.trace_id, log.span_id)
    service = _text(log.resource.get("service.name")) or "unknown_service"
    evaluator = (_text(attrs.get(EVALUATOR_ID)) or _text(log.scope) or service)[:NAME_CHARS]
    error = _text(attrs.get(ERROR_TYPE))
    value = attrs.get(SCORE_VALUE)
    score = float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) else None
    if score is None and not error:  # a label alone: no value to store beside the others
        return None
    threshold = config.thresholds.get(name)
    flagged = threshold is not None and score is not None and score >= threshold and not error
    field = _text(attrs.get(FIELD))[:NAME_CHARS] or "call"
    now = datetime.now(UTC)
    ts = datetime.fromtimestamp(log.time_ns / 1e9, UTC) if log.time_ns else now
    if not now - MAX_AGE <= ts <= now + MAX_AHEAD:  # a clock that is off, or a hostile value
        ts = now
    row = ScoreRow(
        sample_id=sample_id, ts=ts, service=service, watcher=evaluator,
        version=(_text(attrs.get(EVALUATOR_VERSION_PROPOSED))
                 or _text(attrs.get(EVALUATOR_VERSION)))[:NAME_CHARS],
        field=field, label="_error" if error else name, score=score or 0.0, flagged=flagged,
        threshold=threshold, latency_ms=0.0, error=error, source=EVENT_SOURCE,
        evaluator_type=_text(attrs.get(EVALUATOR_TYPE))[:NAME_CHARS],
        explanation=_text(attrs.get(EXPLANATION))[:10_000])
    flag = None
    if flagged:
        source = f"{EVENT_SOURCE}:{evaluator}"
        flag = FlagRow(flag_id=flag_id(str(sample_id), source, name, field),
                       sample_id=sample_id, ts=ts, service=service, source=source,
                       reason=f"{name} {score:.2f} >= {threshold:g} ({evaluator})",
                       label=name, field=field, score=float(score or 0.0))
    return row, flag


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
