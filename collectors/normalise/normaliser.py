"""From OTLP spans (plus the log records that belong to them) to Samples, SpanRecords and
Feedback: the single mapping between what instrumentations send and what Watchkeeper stores.

The compiled path (native/) is handed this module's tables (collectors/normalise/native.py
builds its rules from them), so a change here reaches it without a change to native/.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from watchkeeper.collectors.normalise.messages import loads_maybe
from watchkeeper.collectors.normalise.otlp import LogView, SpanView
from watchkeeper.collectors.normalise.sample import (
    Feedback,
    Message,
    Sample,
    SpanRecord,
    Status,
    sample_id_for,
)
from watchkeeper.collectors.normalise.shapes import Content, registry
from watchkeeper.collectors.normalise.shapes.openinference import LLM_SPAN_KIND, SPAN_KIND_KEY

REDACTIONS_KEY = "watchkeeper.redactions"
FEEDBACK_SPAN = "gen_ai.feedback"
FEEDBACK_SPAN_ID_KEY = "watchkeeper.feedback.span_id"  # with FEEDBACK_SPAN: a feedback span
LLM_OPERATIONS = frozenset(
    {"chat", "text_completion", "completion", "generate_content", "responses", "create_response"}
)
DEFAULT_OPERATION = "chat"
GENAI_MARKERS = ("gen_ai.request.model", "gen_ai.system", "gen_ai.provider.name")
MAX_ATTRIBUTE_CHARS = 4096
EXCEPTION_EVENT = "exception"  # its exception.type names an error the span's attributes do not
EXCEPTION_TYPE_KEY = "exception.type"

# Each field, with the attribute names that carry it, newest convention first.
ALIASES: dict[str, tuple[str, ...]] = {
    "provider": ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"),
    "operation": ("gen_ai.operation.name", "llm.request.type"),
    "request_model": ("gen_ai.request.model", "llm.request.model", "llm.model_name"),
    "response_model": ("gen_ai.response.model", "llm.response.model", "llm.model_name"),
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                     "llm.usage.prompt_tokens", "llm.token_count.prompt"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                      "llm.usage.completion_tokens", "llm.token_count.completion"),
    "finish_reasons": ("gen_ai.response.finish_reasons",),
    "conversation_id": ("gen_ai.conversation.id", "session.id"),
    "user_id": ("user.id", "enduser.id", "gen_ai.request.user"),
    "error_type": ("error.type",),
}
RESOURCE_ALIASES: dict[str, tuple[str, ...]] = {
    "service": ("service.name",),
    "environment": ("deployment.environment.name", "deployment.environment"),
    "k8s_namespace": ("k8s.namespace.name",),
    "k8s_pod": ("k8s.pod.name",),
}
METADATA_KEYS = frozenset(k for keys in ALIASES.values() for k in keys) | {REDACTIONS_KEY}
# Metadata read beside the aliases, by this module only (OpenInference's request parameters and
# finish reason): the compiled path leaves a span carrying one to it.
INVOCATION_PARAMETERS_KEY = "llm.invocation_parameters"
FINISH_REASON_KEY = "llm.finish_reason"
FALLBACK_KEYS = (INVOCATION_PARAMETERS_KEY, FINISH_REASON_KEY)


@dataclass(frozen=True, slots=True)
class NormaliseOptions:
    hash_user_ids: bool = True
    user_id_salt: str = ""


def _first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value not in (None, ""):
            return value
    return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _timestamp(ns: int) -> datetime:
    """A span without a start time is stamped on arrival rather than dated 1970 (which the
    retention TTL would drop on insert)."""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC) if ns else datetime.now(UTC)


def _stringify(attrs: dict[str, Any], skip: set[str] | frozenset[str]) -> dict[str, str]:
    """Attribute values as their JSON text (ints spelled without json.dumps: most of them)."""
    out = {}
    for key, value in attrs.items():
        if key in skip:
            continue
        if isinstance(value, str):
            text = value
        elif type(value) is int:
            text = str(value)
        else:
            text = json.dumps(value, default=str)
        out[key] = text[:MAX_ATTRIBUTE_CHARS]
    return out


def _class_name(error_type: str) -> str:
    """One spelling for dashboards: instrumentations write "InternalServerError",
    "openai.InternalServerError" or repr(type(exc)), "<class 'openai.InternalServerError'>"."""
    if error_type.startswith("<class '") and error_type.endswith("'>"):
        error_type = error_type[8:-2]
    return error_type.rsplit(".", 1)[-1] if " " not in error_type else error_type


def _status(span: SpanView) -> Status:
    return span.status if span.status in ("ok", "error") else "unset"  # type: ignore[return-value]


def is_llm_call(span: SpanView) -> bool:
    attrs = span.attributes
    for key in ALIASES["operation"]:  # the first truthy one decides
        if operation := attrs.get(key):
            return str(operation) in LLM_OPERATIONS
    if attrs.get(SPAN_KIND_KEY) == LLM_SPAN_KIND:
        return True
    return any(k in attrs for k in GENAI_MARKERS)


def is_feedback(span: SpanView) -> bool:
    return span.name == FEEDBACK_SPAN and FEEDBACK_SPAN_ID_KEY in span.attributes


def hash_user_id(user_id: str, options: NormaliseOptions) -> str:
    if not user_id or not options.hash_user_ids:
        return user_id
    return hashlib.sha256(f"{options.user_id_salt}:{user_id}".encode()).hexdigest()[:32]


def prompt_text(messages: Sequence[Message]) -> str:
    """The new turn: the last user message (earlier turns are history, already scored)."""
    for message in reversed(messages):
        if message.role == "user" and message.text():
            return message.text()
    return "\n".join(t for m in messages if m.role != "system" and (t := m.text()))


def merge_content(span: SpanView, logs: Sequence[LogView]) -> tuple[Content, str]:
    """Each side comes from the first shape that has it; the source names the shape(s)."""
    merged = Content()
    sources: list[str] = []
    for shape in registry():
        found = shape.extract(span, logs)
        if found is None:
            continue
        merged.consumed |= found.consumed
        used = False
        for side in ("input", "output", "system"):
            if getattr(found, side) and not getattr(merged, side):
                setattr(merged, side, getattr(found, side))
                used = True
        if used:
            sources.append(shape.NAME)
    if not merged.system:
        merged.system = "\n".join(t for m in merged.input if m.role == "system" and (t := m.text()))
    return merged, "+".join(sources)


def to_sample(span: SpanView, logs: Sequence[LogView], options: NormaliseOptions) -> Sample:
    attrs = span.attributes
    content, source = merge_content(span, logs)
    meta = {field: _first(attrs, keys) for field, keys in ALIASES.items()}
    for log in logs:  # log records may carry what the span left out (usage, models, reasons)
        for field, keys in ALIASES.items():
            if meta[field] is None:
                meta[field] = _first(log.attributes, keys)
    if meta["request_model"] is None:  # OpenInference keeps request parameters as one JSON
        invocation = loads_maybe(attrs.get(INVOCATION_PARAMETERS_KEY))
        if isinstance(invocation, dict):
            meta["request_model"] = invocation.get("model")
    if meta["finish_reasons"] is None and attrs.get(FINISH_REASON_KEY):
        meta["finish_reasons"] = [attrs[FINISH_REASON_KEY]]
    resource = {field: _text(_first(span.resource, keys))
                for field, keys in RESOURCE_ALIASES.items()}
    finish = meta["finish_reasons"]
    if finish is None:
        finish = [m.finish_reason for m in content.output if m.finish_reason]
    status = _status(span)
    error_type = _text(meta["error_type"])
    if status == "error" and not error_type:
        error_type = next((_text(a.get(EXCEPTION_TYPE_KEY)) for n, a in span.events
                           if n == EXCEPTION_EVENT), "") or span.status_message
    error_type = _class_name(error_type)
    redactions = _int(attrs.get(REDACTIONS_KEY)) or 0
    redactions += sum(_int(log.attributes.get(REDACTIONS_KEY)) or 0 for log in logs)
    return Sample(
        sample_id=sample_id_for(span.trace_id, span.span_id),
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        ts=_timestamp(span.start_ns),
        duration_ms=max(0, span.end_ns - span.start_ns) / 1e6,
        status=status,
        error_type=error_type,
        provider=_text(meta["provider"]),
        operation=_text(meta["operation"]) or DEFAULT_OPERATION,
        request_model=_text(meta["request_model"]),
        response_model=_text(meta["response_model"]),
        input_messages=content.input,
        output_messages=content.output,
        system_instructions=content.system,
        prompt_text=prompt_text(content.input),
        completion_text="\n".join(t for m in content.output if (t := m.text())),
        input_tokens=_int(meta["input_tokens"]),
        output_tokens=_int(meta["output_tokens"]),
        finish_reasons=[str(f) for f in (finish if isinstance(finish, list) else [finish])],
        conversation_id=_text(meta["conversation_id"]),
        user_id=hash_user_id(_text(meta["user_id"]), options),
        attributes=_stringify(attrs, METADATA_KEYS | content.consumed),
        redactions=redactions,
        source=source,
        scope=span.scope,
        **resource,
    )


def to_span_record(span: SpanView) -> SpanRecord:
    return SpanRecord(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        ts=_timestamp(span.start_ns),
        duration_ms=max(0, span.end_ns - span.start_ns) / 1e6,
        name=span.name,
        kind=span.kind,
        status=_status(span),
        service=_text(_first(span.resource, RESOURCE_ALIASES["service"])),
        environment=_text(_first(span.resource, RESOURCE_ALIASES["environment"])),
        scope=span.scope,
        attributes=_stringify(span.attributes, frozenset()),
    )


def to_feedback(span: SpanView, options: NormaliseOptions) -> Feedback:
    attrs = span.attributes
    score = attrs.get("watchkeeper.feedback.score")
    return Feedback(
        trace_id=_text(attrs.get("watchkeeper.feedback.trace_id")) or span.trace_id,
        span_id=_text(attrs.get(FEEDBACK_SPAN_ID_KEY)),
        ts=_timestamp(span.start_ns),
        score=None if score is None else float(score),
        thumbs=_text(attrs.get("watchkeeper.feedback.thumbs")),
        comment=_text(attrs.get("watchkeeper.feedback.comment")),
        user_id=hash_user_id(_text(attrs.get("user.id")), options),
        service=_text(_first(span.resource, RESOURCE_ALIASES["service"])),
    )
