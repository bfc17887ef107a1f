"""OpenTelemetry GenAI semantic conventions, latest: `gen_ai.input.messages`,
`gen_ai.output.messages`, `gen_ai.system_instructions` on the span (JSON strings) or on a
`gen_ai.client.inference.operation.details` log record (structured values). Used by the
contrib openai-v2 instrumentation, OpenLLMetry ≥ 0.55, OpenLIT 1.4x and the Watchkeeper SDK.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchkeeper.collectors.normalise.messages import instruction_text, latest_messages
from watchkeeper.collectors.normalise.otlp import LogView, SpanView
from watchkeeper.collectors.normalise.shapes import Content, Markers

NAME = "genai_latest"
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
# input, output, system instructions: on the span, the one content the compiled path takes on
KEYS = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions")
MARKERS = Markers(keys=KEYS, events=(DETAILS_EVENT,))


def _from(attrs: dict[str, Any], content: Content) -> None:
    if not content.input and KEYS[0] in attrs:
        content.input = latest_messages(attrs[KEYS[0]])
    if not content.output and KEYS[1] in attrs:
        content.output = latest_messages(attrs[KEYS[1]])
    if not content.system and KEYS[2] in attrs:
        content.system = instruction_text(attrs[KEYS[2]])


def extract(span: SpanView, logs: Sequence[LogView]) -> Content | None:
    content = Content(consumed=set(KEYS))
    _from(span.attributes, content)
    for name, attrs in span.events:
        if name == DETAILS_EVENT:
            _from(attrs, content)
    for log in logs:
        if log.event_name == DETAILS_EVENT:
            _from(log.attributes, content)
    return None if content.empty() else content
