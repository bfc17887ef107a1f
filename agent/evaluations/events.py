"""`gen_ai.evaluation.result` (OpenTelemetry semantic conventions for GenAI, v1.38.0, status
Development): a log record parented to the evaluated span, with the evaluation's name, score
value and label, explanation and `error.type`. The evaluator's identity follows the open
proposal (`gen_ai.evaluation.evaluator.*`); what the convention has no name for yet is under
`watchkeeper.evaluation.*`. docs/evaluations.md has the mapping."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
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
from watchkeeper.collectors.normalise.otlp import LogView, SpanView

EVALUATOR_VERSION = "watchkeeper.evaluation.evaluator.version"
EVALUATOR_VERSION_PROPOSED = PROPOSED_VERSION  # read, as proposed
THRESHOLD = "watchkeeper.evaluation.threshold"
FLAGGED = "watchkeeper.evaluation.flagged"
FIELD = "watchkeeper.evaluation.field"
SAMPLE_ID = "watchkeeper.sample_id"
RESPONSE_ID = "gen_ai.response.id"  # names the evaluated call when the span is not known

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


@dataclass(frozen=True, slots=True)
class Received:
    """A received evaluation, read and bounded, before it is tied to a sample: by the span it
    names (`trace_id`, `span_id`), or else by the call's `response_id`."""

    name: str
    field: str
    ts: datetime
    service: str
    evaluator: str
    version: str
    evaluator_type: str
    explanation: str
    error: str
    score: float | None
    threshold: float | None
    trace_id: str
    span_id: str
    response_id: str

    @property
    def names_span(self) -> bool:
        return bool(self.span_id) and self.span_id != UNSET_SPAN \
            and bool(self.trace_id.strip("0"))

    def rows(self, sample_id: uuid.UUID, service: str | None = None
             ) -> tuple[ScoreRow, FlagRow | None]:
        """The `scores` row of the evaluated sample, and a flag when the name has a threshold
        the score reaches; `service`, when given, is the sample's (a call joined by its
        response id), else the sender's."""
        service = service or self.service
        flagged = (self.threshold is not None and self.score is not None
                   and self.score >= self.threshold and not self.error)
        row = ScoreRow(
            sample_id=sample_id, ts=self.ts, service=service, watcher=self.evaluator,
            version=self.version, field=self.field, label="_error" if self.error else self.name,
            score=self.score or 0.0, flagged=flagged, threshold=self.threshold, latency_ms=0.0,
            error=self.error, source=EVENT_SOURCE, evaluator_type=self.evaluator_type,
            explanation=self.explanation)
        if not flagged:
            return row, None
        source = f"{EVENT_SOURCE}:{self.evaluator}"
        return row, FlagRow(
            flag_id=flag_id(str(sample_id), source, self.name, self.field), sample_id=sample_id,
            ts=self.ts, service=service, source=source, label=self.name, field=self.field,
            reason=f"{self.name} {self.score:.2f} >= {self.threshold:g} ({self.evaluator})",
            score=float(self.score or 0.0))


def received(attrs: Mapping[str, Any], *, trace_id: str, span_id: str, time_ns: int,
             resource: Mapping[str, Any], scope: str, config: EvaluationReceiveConfig
             ) -> Received | None:
    """An evaluation event's attributes, wherever it came (a log record, a span event); None
    when it has no name, neither a value nor an error, or names neither a span nor a
    response id."""
    name = _text(attrs.get(NAME))[:NAME_CHARS]
    response_id = _text(attrs.get(RESPONSE_ID))[:NAME_CHARS]
    service = _text(resource.get("service.name")) or "unknown_service"
    error = _text(attrs.get(ERROR_TYPE))
    value = attrs.get(SCORE_VALUE)
    score = float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) else None
    if not name or (score is None and not error):  # a label alone: no value to store
        return None
    now = datetime.now(UTC)
    ts = datetime.fromtimestamp(time_ns / 1e9, UTC) if time_ns else now
    if not now - MAX_AGE <= ts <= now + MAX_AHEAD:  # a clock that is off, or a hostile value
        ts = now
    event = Received(
        name=name, field=_text(attrs.get(FIELD))[:NAME_CHARS] or "call", ts=ts,
        service=service,
        evaluator=(_text(attrs.get(EVALUATOR_ID)) or _text(scope) or service)[:NAME_CHARS],
        version=(_text(attrs.get(EVALUATOR_VERSION_PROPOSED))
                 or _text(attrs.get(EVALUATOR_VERSION)))[:NAME_CHARS],
        evaluator_type=_text(attrs.get(EVALUATOR_TYPE))[:NAME_CHARS],
        explanation=_text(attrs.get(EXPLANATION))[:10_000], error=error, score=score,
        threshold=config.thresholds.get(name), trace_id=trace_id, span_id=span_id,
        response_id=response_id)
    return event if event.names_span or response_id else None


def from_log(log: LogView, config: EvaluationReceiveConfig) -> Received | None:
    """A `gen_ai.evaluation.result` log record: parented to the evaluated span, or naming
    only the call's `gen_ai.response.id`."""
    return received(log.attributes, trace_id=log.trace_id, span_id=log.span_id,
                    time_ns=log.time_ns, resource=log.resource, scope=log.scope, config=config)


def from_span_events(span: SpanView, evaluated: bool, config: EvaluationReceiveConfig
                     ) -> list[Received]:
    """`gen_ai.evaluation.result` events on a span. They evaluate the span itself when it is
    an LLM call (`evaluated`); on another span (an evaluator's own), the call their
    `gen_ai.response.id` names, else the span's parent."""
    out = []
    for name, attrs in span.events:
        if name != EVENT_NAME:
            continue
        target = (span.span_id if evaluated
                  else "" if RESPONSE_ID in attrs else span.parent_span_id)
        event = received(attrs, trace_id=span.trace_id, span_id=target, time_ns=span.end_ns,
                         resource=span.resource, scope=span.scope, config=config)
        if event is not None:
            out.append(event)
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
