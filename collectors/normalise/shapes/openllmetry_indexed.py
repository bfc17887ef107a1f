"""OpenLLMetry before 0.55 (and its per-provider instrumentations): indexed attributes
`gen_ai.prompt.N.role/content/tool_calls` and `gen_ai.completion.N.role/content/finish_reason`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from watchkeeper.collectors.normalise.messages import parts_from_content, tool_call_parts
from watchkeeper.collectors.normalise.otlp import LogView, SpanView
from watchkeeper.collectors.normalise.sample import Message
from watchkeeper.collectors.normalise.shapes import Content, Markers

NAME = "openllmetry_indexed"
MARKERS = Markers(prefixes=("gen_ai.prompt.", "gen_ai.completion."))
INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")


def _messages(fields: dict[int, dict[str, Any]], default_role: str) -> list[Message]:
    messages = []
    for _, item in sorted(fields.items()):
        tool_calls = [{"id": item.get(f"tool_calls.{i}.id"),
                       "name": item.get(f"tool_calls.{i}.name"),
                       "arguments": item.get(f"tool_calls.{i}.arguments")}
                      for i in range(64) if f"tool_calls.{i}.name" in item]
        parts = parts_from_content(item.get("content")) + tool_call_parts(tool_calls)
        messages.append(Message(role=str(item.get("role") or default_role), parts=parts,
                                finish_reason=item.get("finish_reason")))
    return messages


def extract(span: SpanView, logs: Sequence[LogView]) -> Content | None:
    prompts: dict[int, dict[str, Any]] = defaultdict(dict)
    completions: dict[int, dict[str, Any]] = defaultdict(dict)
    consumed = set()
    for key, value in span.attributes.items():
        if not key.startswith(MARKERS.prefixes):
            continue
        match = INDEXED.match(key)
        if match is None:
            continue
        side, index, name = match.groups()
        (prompts if side == "prompt" else completions)[int(index)][name] = value
        consumed.add(key)
    if not consumed:
        return None
    content = Content(input=_messages(prompts, "user"), output=_messages(completions, "assistant"),
                      consumed=consumed)
    return content
