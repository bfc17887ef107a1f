"""Rows for each capture table, in column order. Written by hand rather than model_dump():
ingest converts tens of thousands of samples a second and this is its hot loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter

from watchkeeper.collectors.normalise.sample import Feedback, Message, Sample, SpanRecord

SAMPLE_COLUMNS = (
    "sample_id", "trace_id", "span_id", "parent_span_id", "ts", "duration_ms", "status",
    "error_type", "service", "environment", "k8s_namespace", "k8s_pod", "provider", "operation",
    "request_model", "response_model", "input_messages", "output_messages",
    "system_instructions", "prompt_text", "completion_text", "input_tokens", "output_tokens",
    "finish_reasons", "conversation_id", "user_id", "attributes", "redactions", "source",
    "scope",
)
SPAN_COLUMNS = ("trace_id", "span_id", "parent_span_id", "ts", "duration_ms", "name", "kind",
                "status", "service", "environment", "scope", "attributes")
FEEDBACK_COLUMNS = ("trace_id", "span_id", "ts", "score", "thumbs", "comment", "user_id",
                    "service")


_MESSAGES: TypeAdapter[list[Message]] = TypeAdapter(list[Message])


def messages_json(messages: Sequence[Message]) -> str:
    return _MESSAGES.dump_json(list(messages), exclude_none=True).decode()


def sample_row(s: Sample) -> list[Any]:
    return [
        s.sample_id, s.trace_id, s.span_id, s.parent_span_id, s.ts, s.duration_ms, s.status,
        s.error_type, s.service, s.environment, s.k8s_namespace, s.k8s_pod, s.provider,
        s.operation, s.request_model, s.response_model, messages_json(s.input_messages),
        messages_json(s.output_messages), s.system_instructions, s.prompt_text,
        s.completion_text, s.input_tokens, s.output_tokens, s.finish_reasons,
        s.conversation_id, s.user_id, s.attributes, s.redactions, s.source, s.scope,
    ]


def span_row(s: SpanRecord) -> list[Any]:
    return [s.trace_id, s.span_id, s.parent_span_id, s.ts, s.duration_ms, s.name, s.kind,
            s.status, s.service, s.environment, s.scope, s.attributes]


def feedback_row(f: Feedback) -> list[Any]:
    return [f.trace_id, f.span_id, f.ts, f.score, f.thumbs, f.comment, f.user_id, f.service]
