"""Older OpenTelemetry GenAI conventions: one event per message (`gen_ai.system.message`,
`gen_ai.user.message`, `gen_ai.assistant.message`, `gen_ai.tool.message`, `gen_ai.choice`),
sent as OTLP log records or as span events; and the oldest form, span events
`gen_ai.content.prompt` / `gen_ai.content.completion` with `gen_ai.prompt` /
`gen_ai.completion` attributes (OpenLIT before 1.4, OpenLLMetry event mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchkeeper.collectors.normalise.messages import (
    latest_messages,
    loads_maybe,
    parts_from_content,
    tool_call_parts,
)
from watchkeeper.collectors.normalise.otlp import LogView, SpanView
from watchkeeper.collectors.normalise.sample import Message
from watchkeeper.collectors.normalise.shapes import Content, Markers

NAME = "genai_events"
ROLE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
CHOICE_EVENT = "gen_ai.choice"
PROMPT_EVENT = "gen_ai.content.prompt"
COMPLETION_EVENT = "gen_ai.content.completion"
MARKERS = Markers(events=(*ROLE_EVENTS, CHOICE_EVENT, PROMPT_EVENT, COMPLETION_EVENT))


def _message(role: str, body: Any) -> Message:
    body = loads_maybe(body)
    if not isinstance(body, dict):
        return Message(role=role, parts=parts_from_content(body))
    parts = parts_from_content(body.get("content")) + tool_call_parts(body.get("tool_calls"))
    return Message(role=str(body.get("role") or role), parts=parts)


def _choice(body: Any) -> Message:
    body = loads_maybe(body)
    if not isinstance(body, dict):
        return Message(role="assistant", parts=parts_from_content(body))
    message = _message("assistant", body.get("message") or {})
    message.finish_reason = body.get("finish_reason")
    return message


def _legacy_list(value: Any, role: str) -> list[Message]:
    value = loads_maybe(value)
    if isinstance(value, list):
        return latest_messages(value)
    return [Message(role=role, parts=parts_from_content(value))] if value else []


def extract(span: SpanView, logs: Sequence[LogView]) -> Content | None:
    content = Content()
    # Span events first (same process, same order), then log records in arrival order.
    events = [(name, attrs.get("body", attrs)) for name, attrs in span.events]
    events += [(log.event_name, log.body) for log in logs]
    choices: list[tuple[int, Message]] = []
    for name, body in events:
        if name in ROLE_EVENTS:
            content.input.append(_message(ROLE_EVENTS[name], body))
        elif name == CHOICE_EVENT:
            index = body.get("index", len(choices)) if isinstance(body, dict) else len(choices)
            choices.append((int(index or 0), _choice(body)))
        elif name == PROMPT_EVENT and isinstance(body, dict):
            content.input += _legacy_list(body.get("gen_ai.prompt"), "user")
        elif name == COMPLETION_EVENT and isinstance(body, dict):
            content.output += _legacy_list(body.get("gen_ai.completion"), "assistant")
    content.output += [m for _, m in sorted(choices, key=lambda c: c[0])]
    return None if content.empty() else content
