"""OpenInference (Arize Phoenix): `llm.input_messages.N.message.role/content` (or
`.message.contents.M.message_content.text`), `llm.output_messages.N.message.*`, falling back to
`input.value` / `output.value`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from watchkeeper.collectors.normalise.messages import loads_maybe, parts_from_content
from watchkeeper.collectors.normalise.otlp import LogView, SpanView
from watchkeeper.collectors.normalise.sample import Message, Part
from watchkeeper.collectors.normalise.shapes import Content, Markers

NAME = "openinference"
SPAN_KIND_KEY = "openinference.span.kind"
LLM_SPAN_KIND = "LLM"
# "llm.": OpenInference's namespace (its messages, and metadata the normaliser reads beside its
# aliases: request parameters, finish reason), shared with older OpenLLMetry's llm.request.type
MARKERS = Markers(keys=(SPAN_KIND_KEY,), prefixes=("llm.",))
INDEXED = re.compile(r"^llm\.(input|output)_messages\.(\d+)\.message\.(.+)$")
CONTENTS = re.compile(r"^contents\.(\d+)\.message_content\.(text|type)$")
TOOL_CALL = re.compile(r"^tool_calls\.(\d+)\.tool_call\.(?:function\.)?(id|name|arguments)$")


def _message(fields: dict[str, Any], default_role: str) -> Message:
    parts = parts_from_content(fields.get("content"))
    contents: dict[int, dict[str, Any]] = defaultdict(dict)
    calls: dict[int, dict[str, Any]] = defaultdict(dict)
    for key, value in fields.items():
        if match := CONTENTS.match(key):
            contents[int(match[1])][match[2]] = value
        elif match := TOOL_CALL.match(key):
            calls[int(match[1])][match[2]] = value
    parts += [Part(type="text", content=c.get("text")) for _, c in sorted(contents.items())
              if c.get("text")]
    parts += [Part(type="tool_call", content=None, id=c.get("id"), name=c.get("name"),
                   arguments=loads_maybe(c.get("arguments"))) for _, c in sorted(calls.items())]
    return Message(role=str(fields.get("role") or default_role), parts=parts)


def extract(span: SpanView, logs: Sequence[LogView]) -> Content | None:
    sides: dict[str, dict[int, dict[str, Any]]] = {"input": defaultdict(dict),
                                                  "output": defaultdict(dict)}
    consumed = set()
    for key, value in span.attributes.items():
        if key.startswith(MARKERS.prefixes) and (match := INDEXED.match(key)):
            sides[match[1]][int(match[2])][match[3]] = value
            consumed.add(key)
    is_llm = span.attributes.get(SPAN_KIND_KEY) == LLM_SPAN_KIND
    if not consumed and not is_llm:
        return None
    content = Content(consumed=consumed)
    content.input = [_message(f, "user") for _, f in sorted(sides["input"].items())]
    content.output = [_message(f, "assistant") for _, f in sorted(sides["output"].items())]
    if is_llm:
        for side, key in (("input", "input.value"), ("output", "output.value")):
            value = span.attributes.get(key)
            if value and not getattr(content, side):
                role = "user" if side == "input" else "assistant"
                setattr(content, side, [Message(role=role, parts=parts_from_content(value))])
                content.consumed.add(key)
    return None if content.empty() else content
