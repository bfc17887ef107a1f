"""The latest OpenTelemetry GenAI semantic conventions: attribute names and value builders.

One module builds every attribute and every message JSON document, so that the openai wrapper
and `llm_call` emit exactly the same shapes and the normaliser reads one dialect. Everything
here is a pure function of its arguments: no spans, no I/O, no provider SDK imports.

Message documents follow the GenAI input/output message schemas: a message is
`{"role": ..., "parts": [...]}` (output messages add `finish_reason`), a part is one of
`text`, `tool_call`, `tool_call_response`, `reasoning`, `blob`, `uri` or `file`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.util.types import AttributeValue

Attributes = dict[str, AttributeValue]
Part = dict[str, Any]
Message = dict[str, Any]

# --- attribute names -------------------------------------------------------------------------
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_TOP_K = "gen_ai.request.top_k"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
REQUEST_STREAM = "gen_ai.request.stream"
OUTPUT_TYPE = "gen_ai.output.type"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
# No GenAI attribute says how fast a stream delivered its tokens: output tokens per second
# after the first chunk, the SDK's own name.
OUTPUT_TOKENS_PER_SECOND = "watchkeeper.response.output_tokens_per_second"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
HTTP_STATUS_CODE = "http.response.status_code"
USER_ID = "user.id"
OPENAI_API_TYPE = "openai.api.type"
OPENAI_REQUEST_SERVICE_TIER = "openai.request.service_tier"
OPENAI_RESPONSE_SERVICE_TIER = "openai.response.service_tier"
OPENAI_RESPONSE_SYSTEM_FINGERPRINT = "openai.response.system_fingerprint"

# Request parameters as callers spell them (OpenAI, vLLM, Anthropic, Hugging Face) → attribute.
_FLOAT_PARAMS = {
    "temperature": REQUEST_TEMPERATURE,
    "top_p": REQUEST_TOP_P,
    "top_k": REQUEST_TOP_K,
    "frequency_penalty": REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": REQUEST_PRESENCE_PENALTY,
}
_INT_PARAMS = {
    "max_tokens": REQUEST_MAX_TOKENS,
    "max_completion_tokens": REQUEST_MAX_TOKENS,
    "max_output_tokens": REQUEST_MAX_TOKENS,
    "max_new_tokens": REQUEST_MAX_TOKENS,
    "seed": REQUEST_SEED,
}
KNOWN_REQUEST_PARAMS = frozenset(
    {*_FLOAT_PARAMS, *_INT_PARAMS, "stop", "stop_sequences", "n", "stream", "response_format"}
)

# Provider finish reasons → the FinishReason values of the output message schema.
_FINISH_REASONS = {"tool_calls": "tool_call", "function_call": "tool_call"}
UNKNOWN_FINISH_REASON = "unknown"


# --- small helpers ---------------------------------------------------------------------------
def field(obj: Any, name: str) -> Any:
    """Read `name` from a mapping, an object, or a pydantic model's extra fields.

    Provider payloads arrive as dicts (request params) or as pydantic models (responses,
    and earlier responses appended to a chat history); OpenAI-compatible servers add fields
    such as `reasoning_content` that only exist in `model_extra`.
    """
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    value = getattr(obj, name, None)
    if value is None:
        extra = getattr(obj, "model_extra", None)
        if isinstance(extra, Mapping):
            return extra.get(name)
    return value


def to_json(value: Any) -> str:
    """Compact JSON that never fails: unknown objects become their pydantic dump or str()."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_jsonable)


def _jsonable(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    return str(obj)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None  # also drops openai's Omit/NotGiven sentinels
    result = float(value)
    return result if math.isfinite(result) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def span_name(operation: str, model: str | None) -> str:
    """`{operation} {model}`, as the conventions name inference spans."""
    return f"{operation} {model}" if model else operation


# --- request ---------------------------------------------------------------------------------
def request_attributes(
    *, operation: str, provider: str, model: str | None, params: Mapping[str, Any]
) -> Attributes:
    """The attributes known before the call: operation, provider, model, sampling params."""
    attrs: Attributes = {OPERATION_NAME: operation, PROVIDER_NAME: provider}
    if model:
        attrs[REQUEST_MODEL] = model
    for name, attr in _FLOAT_PARAMS.items():
        number = _float(params.get(name))
        if number is not None:
            attrs[attr] = number
    for name, attr in _INT_PARAMS.items():
        integer = _int(params.get(name))
        if integer is not None:
            attrs.setdefault(attr, integer)
    stop = params.get("stop", params.get("stop_sequences"))
    if isinstance(stop, str):
        attrs[REQUEST_STOP_SEQUENCES] = [stop]
    elif isinstance(stop, Sequence) and stop and all(isinstance(s, str) for s in stop):
        attrs[REQUEST_STOP_SEQUENCES] = list(stop)
    choices = _int(params.get("n"))
    if choices is not None and choices != 1:
        attrs[REQUEST_CHOICE_COUNT] = choices
    if isinstance(params.get("stream"), bool):
        attrs[REQUEST_STREAM] = params["stream"]
    output_type = _output_type(params.get("response_format"))
    if output_type:
        attrs[OUTPUT_TYPE] = output_type
    return attrs


def _output_type(response_format: Any) -> str | None:
    kind = response_format if isinstance(response_format, str) else field(response_format, "type")
    if kind in ("json_object", "json_schema", "json"):
        return "json"
    if kind == "text":
        return "text"
    if isinstance(response_format, type):  # a pydantic class passed to .parse()
        return "json"
    return None


def context_attributes(conversation_id: str | None, user_id: str | None) -> Attributes:
    """Conversation and end-user ids, which let dashboards follow one session or one user."""
    attrs: Attributes = {}
    if conversation_id:
        attrs[CONVERSATION_ID] = conversation_id
    if user_id:
        attrs[USER_ID] = user_id
    return attrs


# --- messages --------------------------------------------------------------------------------
def text_part(text: str) -> Part:
    return {"type": "text", "content": text}


def tool_call_part(call_id: str | None, name: str | None, arguments: Any) -> Part:
    """A tool call request; JSON-string arguments are decoded so they read as objects."""
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    part: Part = {"type": "tool_call", "id": call_id, "name": name or ""}
    if arguments not in (None, ""):
        part["arguments"] = arguments
    return part


def content_parts(content: Any) -> list[Part]:
    """Parts of an OpenAI-style `content`: a string, or a list of typed content parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)] if content else []
    if isinstance(content, Iterable) and not isinstance(content, Mapping | bytes):
        parts: list[Part] = []
        for item in content:
            parts.extend(_content_part(item))
        return parts
    return [text_part(str(content))]


def _content_part(item: Any) -> list[Part]:
    if isinstance(item, str):
        return [text_part(item)]
    kind = field(item, "type")
    if kind in ("text", "input_text", "output_text"):
        text = field(item, "text")
        if text is None:  # already a latest-schema text part
            text = field(item, "content")
        return [text_part(str(text or ""))]
    if kind == "refusal":
        return [text_part(str(field(item, "refusal") or ""))]
    if kind == "image_url":
        image = field(item, "image_url")
        url = image if isinstance(image, str) else field(image, "url")
        return [_media_part("image", str(url or ""))]
    if kind == "input_audio":
        audio = field(item, "input_audio")
        fmt = field(audio, "format")
        return [{"type": "blob", "modality": "audio",
                 "mime_type": f"audio/{fmt}" if fmt else None, "content": field(audio, "data")}]
    if kind == "file":
        file = field(item, "file")
        return [{"type": "file", "modality": "document", "file_id": field(file, "file_id"),
                 "filename": field(file, "filename")}]
    if kind in ("tool_call", "tool_call_response", "reasoning", "blob", "uri"):
        return [dict(item) if isinstance(item, Mapping) else {"type": kind}]
    return [{"type": str(kind or "unknown")}]


def _media_part(modality: str, url: str) -> Part:
    """A data: URL becomes an inline blob, anything else a reference by URI."""
    if url.startswith("data:") and "," in url:
        header, data = url[5:].split(",", 1)
        return {"type": "blob", "modality": modality, "mime_type": header.split(";")[0] or None,
                "content": data}
    return {"type": "uri", "modality": modality, "uri": url}


def input_messages(messages: Iterable[Any] | None) -> tuple[list[Part], list[Message]]:
    """Split a chat history into (system instructions, input messages) in the latest schema.

    System and developer messages become `gen_ai.system_instructions` parts; tool results
    become `tool_call_response` parts; assistant tool calls become `tool_call` parts.
    Messages already in the latest shape (with `parts`) pass through unchanged.
    """
    system: list[Part] = []
    converted: list[Message] = []
    for message in messages or ():
        role = str(field(message, "role") or "user")
        existing = field(message, "parts")
        if isinstance(existing, list):
            parts = [dict(p) if isinstance(p, Mapping) else text_part(str(p)) for p in existing]
        elif role == "tool":
            parts = [{"type": "tool_call_response", "id": field(message, "tool_call_id"),
                      "response": _flat_text(field(message, "content"))}]
        elif role == "function":  # the legacy functions API
            parts = [{"type": "tool_call_response", "id": None,
                      "response": _flat_text(field(message, "content"))}]
            role = "tool"
        else:
            parts = content_parts(field(message, "content"))
            parts.extend(_tool_call_parts(message))
        if role in ("system", "developer"):
            system.extend(parts)
            continue
        converted_message: Message = {"role": role, "parts": parts}
        name = field(message, "name")
        if isinstance(name, str) and name:
            converted_message["name"] = name
        converted.append(converted_message)
    return system, converted


def _flat_text(content: Any) -> str:
    parts = content_parts(content)
    return "".join(str(p.get("content", "")) for p in parts if p.get("type") == "text")


def _tool_call_parts(message: Any) -> list[Part]:
    parts: list[Part] = []
    for call in field(message, "tool_calls") or ():
        function = field(call, "function")
        if function is not None:
            parts.append(tool_call_part(field(call, "id"), field(function, "name"),
                                        field(function, "arguments")))
        else:  # custom (free-form input) tools
            custom = field(call, "custom")
            parts.append(tool_call_part(field(call, "id"), field(custom, "name"),
                                        field(custom, "input")))
    legacy = field(message, "function_call")
    if legacy is not None:
        parts.append(tool_call_part(None, field(legacy, "name"), field(legacy, "arguments")))
    return parts


def finish_reason(reason: str | None) -> str:
    """A provider finish reason in the output message schema's vocabulary."""
    if not reason:
        return UNKNOWN_FINISH_REASON
    return _FINISH_REASONS.get(reason, reason)


def output_message(
    *,
    text: str | None = None,
    tool_calls: Iterable[Part] = (),
    reasoning: str | None = None,
    finish: str | None = None,
    role: str = "assistant",
) -> Message:
    """One generated message: optional reasoning, text and tool calls, with its finish reason."""
    parts: list[Part] = []
    if reasoning:
        parts.append({"type": "reasoning", "content": reasoning})
    if text:
        parts.append(text_part(text))
    parts.extend(tool_calls)
    return {"role": role, "parts": parts, "finish_reason": finish_reason(finish)}


def message_from_response(message: Any, finish: str | None) -> Message:
    """An output message from a provider's response message (OpenAI `choice.message`)."""
    text = field(message, "content")
    refusal = field(message, "refusal")
    reasoning = field(message, "reasoning_content") or field(message, "reasoning")
    return output_message(
        text=text if isinstance(text, str) else (refusal if isinstance(refusal, str) else None),
        tool_calls=_tool_call_parts(message),
        reasoning=reasoning if isinstance(reasoning, str) else None,
        finish=finish,
        role=str(field(message, "role") or "assistant"),
    )


def content_attributes(
    *,
    system: Sequence[Part] = (),
    inputs: Sequence[Message] | None = None,
    outputs: Sequence[Message] | None = None,
) -> Attributes:
    """The opt-in content attributes, as JSON strings."""
    attrs: Attributes = {}
    if system:
        attrs[SYSTEM_INSTRUCTIONS] = to_json(list(system))
    if inputs:
        attrs[INPUT_MESSAGES] = to_json(list(inputs))
    if outputs:
        attrs[OUTPUT_MESSAGES] = to_json(list(outputs))
    return attrs


# --- response --------------------------------------------------------------------------------
def response_attributes(
    *,
    response_id: str | None = None,
    response_model: str | None = None,
    finish_reasons: Sequence[str | None] | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cache_read_input_tokens: int | None = None,
    reasoning_output_tokens: int | None = None,
) -> Attributes:
    """What the model said about its answer; missing values are left out, never guessed."""
    attrs: Attributes = {}
    if response_id:
        attrs[RESPONSE_ID] = response_id
    if response_model:
        attrs[RESPONSE_MODEL] = response_model
    reasons = [r for r in finish_reasons or () if r]
    if reasons:
        attrs[RESPONSE_FINISH_REASONS] = reasons
    for name, value in (
        (USAGE_INPUT_TOKENS, input_tokens),
        (USAGE_OUTPUT_TOKENS, output_tokens),
        (USAGE_CACHE_READ_INPUT_TOKENS, cache_read_input_tokens),
        (USAGE_REASONING_OUTPUT_TOKENS, reasoning_output_tokens),
    ):
        integer = _int(value)
        if integer is not None:
            attrs[name] = integer
    return attrs


def usage_values(usage: Any) -> dict[str, int | None]:
    """Token counts from an OpenAI-style usage object, keyed like `response_attributes`."""
    return {
        "input_tokens": _int(field(usage, "prompt_tokens")),
        "output_tokens": _int(field(usage, "completion_tokens")),
        "cache_read_input_tokens": _int(
            field(field(usage, "prompt_tokens_details"), "cached_tokens")),
        "reasoning_output_tokens": _int(
            field(field(usage, "completion_tokens_details"), "reasoning_tokens")),
    }


def error_attributes(exc: BaseException) -> Attributes:
    """`error.type` (the exception class name), plus the HTTP status when the error has one."""
    attrs: Attributes = {ERROR_TYPE: type(exc).__qualname__}
    status = _int(getattr(exc, "status_code", None))
    if status is not None:
        attrs[HTTP_STATUS_CODE] = status
    return attrs
