"""Parsing message content in the shapes instrumentations use, into the latest GenAI schema."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from watchkeeper.collectors.normalise.sample import Message, Part, WireMessage

# The latest conventions' JSON is already our schema: parsed and validated in one pass in
# pydantic-core, without building Python dicts first (the hot path of ingest).
_WIRE_MESSAGES: TypeAdapter[list[WireMessage]] = TypeAdapter(list[WireMessage])
_PARTS: TypeAdapter[list[Part]] = TypeAdapter(list[Part])


def loads_maybe(value: Any) -> Any:
    """Content arrives as a JSON string on span attributes and as structure on log records."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def parts_from_content(content: Any) -> list[Part]:
    """OpenAI-style content: a string, or a list of {"type": "text", "text": …} parts."""
    content = loads_maybe(content)
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [Part(type="text", content=content)]
    if isinstance(content, list):
        parts: list[Part] = []
        for item in content:
            if isinstance(item, dict):
                kind = str(item.get("type", "text"))
                text = item.get("text", item.get("content"))
                extra = {k: v for k, v in item.items() if k not in ("type", "text", "content")}
                parts.append(Part(type=kind, content=text, **extra))
            else:
                parts.append(Part(type="text", content=str(item)))
        return parts
    return [Part(type="text", content=json.dumps(content))]


def tool_call_parts(tool_calls: Any) -> list[Part]:
    parts = []
    for call in loads_maybe(tool_calls) or []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") or {}
        parts.append(Part(type="tool_call", content=None, id=call.get("id"),
                          name=function.get("name", call.get("name")),
                          arguments=loads_maybe(function.get("arguments", call.get("arguments")))))
    return parts


def latest_messages(value: Any) -> list[Message]:
    """`gen_ai.input.messages` / `gen_ai.output.messages`: [{role, parts: [...], finish_reason}]."""
    if isinstance(value, str) and value[:1] == "[":
        try:
            return list(_WIRE_MESSAGES.validate_json(value))
        except ValidationError:
            pass  # not strictly the latest schema: the tolerant path below
    value = loads_maybe(value)
    if not isinstance(value, list):
        return []
    messages = []
    for item in value:
        if not isinstance(item, dict):
            continue
        if "parts" in item:
            parts = [Part(**p) if isinstance(p, dict) else Part(content=str(p))
                     for p in item.get("parts") or []]
        else:  # tolerate OpenAI-style {role, content} lists
            parts = parts_from_content(item.get("content"))
            parts += tool_call_parts(item.get("tool_calls"))
        messages.append(Message(role=str(item.get("role") or "user"), parts=parts,
                                finish_reason=item.get("finish_reason")))
    return messages


def instruction_text(value: Any) -> str:
    """`gen_ai.system_instructions`: a list of parts, or a plain string."""
    if isinstance(value, str) and value[:1] == "[":
        try:
            parts = _PARTS.validate_json(value)
        except ValidationError:
            pass  # the tolerant path below
        else:  # parts in the latest schema carry `content`; OpenAI-style `text` goes below
            if all(isinstance(p.content, str) for p in parts):
                return "\n".join(p.content for p in parts)
    value = loads_maybe(value)
    if isinstance(value, list):
        return "\n".join(p.content for p in parts_from_content(value) if isinstance(p.content, str))
    return "" if value is None else str(value)
