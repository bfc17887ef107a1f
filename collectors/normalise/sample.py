"""The record every downstream part agrees on: one LLM call, whatever instrumentation sent it."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["ok", "error", "unset"]

# Namespace for sample ids: a sample id is a pure function of (trace id, span id), so a
# replayed span lands on the same row and ReplacingMergeTree folds the copies.
SAMPLE_NAMESPACE = uuid.UUID("7c0b7f0e-3a57-4d6b-9a51-6a1f0c2f5e11")
_NAMESPACE_SHA1 = hashlib.sha1(SAMPLE_NAMESPACE.bytes, usedforsecurity=False)


def sample_id_for(trace_id: str, span_id: str) -> uuid.UUID:
    """uuid.uuid5(SAMPLE_NAMESPACE, "trace:span"), with the namespace already hashed once."""
    digest = _NAMESPACE_SHA1.copy()
    digest.update(f"{trace_id}:{span_id}".encode())
    return uuid.UUID(bytes=digest.digest()[:16], version=5)


class Part(BaseModel):
    """One message part in the OpenTelemetry GenAI schema (text, tool_call, tool_call_response…)."""

    model_config = ConfigDict(extra="allow")

    type: str = "text"
    content: Any = None


class Message(BaseModel):
    role: str
    parts: list[Part] = Field(default_factory=list)
    finish_reason: str | None = None

    def text(self) -> str:
        return "\n".join(p.content for p in self.parts if isinstance(p.content, str) and p.content)


class WireMessage(Message):
    """A message exactly in the latest GenAI schema (role and parts present): what the strict
    parse of `gen_ai.*.messages` accepts; anything looser takes the tolerant path."""

    role: str = Field(min_length=1)
    parts: list[Part]


class Sample(BaseModel):
    """One LLM call, normalised. Field names match the `samples` table columns."""

    sample_id: uuid.UUID
    trace_id: str
    span_id: str
    parent_span_id: str = ""
    ts: datetime
    duration_ms: float = 0.0
    status: Status = "unset"
    error_type: str = ""
    service: str = ""
    environment: str = ""
    k8s_namespace: str = ""
    k8s_pod: str = ""
    provider: str = ""
    operation: str = ""
    request_model: str = ""
    response_model: str = ""
    input_messages: list[Message] = Field(default_factory=list)
    output_messages: list[Message] = Field(default_factory=list)
    system_instructions: str = ""
    prompt_text: str = ""
    completion_text: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reasons: list[str] = Field(default_factory=list)
    conversation_id: str = ""
    user_id: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    redactions: int = 0
    source: str = ""
    scope: str = ""


class SpanRecord(BaseModel):
    """A non-LLM span of a trace that holds LLM calls: retrieval, tools, HTTP, app logic."""

    trace_id: str
    span_id: str
    parent_span_id: str = ""
    ts: datetime
    duration_ms: float = 0.0
    name: str = ""
    kind: str = ""
    status: Status = "unset"
    service: str = ""
    environment: str = ""
    scope: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)


class Feedback(BaseModel):
    """An end user's verdict on an earlier call, sent by the SDK's `feedback()`."""

    trace_id: str
    span_id: str
    ts: datetime
    score: float | None = None
    thumbs: str = ""
    comment: str = ""
    user_id: str = ""
    service: str = ""
