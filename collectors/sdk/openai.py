"""Tracing for the openai client's chat completions: sync, async and streaming.

`patch_openai()` replaces `create` and `parse` of `Completions` and `AsyncCompletions` in
`openai.resources.chat.completions` with wrappers that emit one GenAI CLIENT span per call
(the `.stream()` helper goes through `create`). `with_raw_response` / `with_streaming_response`
calls get a span with the request only: reading their body is the app's business.
The wrappers call the original exactly once, pass its result or exception through unchanged,
and guard every line of their own so that telemetry trouble never reaches the app. openai is
imported only when patching, so importing this module costs nothing without the client.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from . import semconv
from .spans import GenAISpan
from .streams import TracedAsyncStream, TracedStream
from .tracing import current

logger = logging.getLogger(__name__)

_MODULE = "openai.resources.chat.completions"
_ORIGINAL = "__watchkeeper_original__"
_METHODS = ("create", "parse")
_PARAMS = (*semconv.KNOWN_REQUEST_PARAMS,)


# --- patching --------------------------------------------------------------------------------
def patch_openai() -> bool:
    """Wrap the chat completion methods; False when openai is not installed.

    Idempotent: an already wrapped method is left alone, so a second call never wraps twice.
    """
    try:
        module = importlib.import_module(_MODULE)
    except ImportError:
        return False
    for cls, wrap in ((module.Completions, _wrap_sync), (module.AsyncCompletions, _wrap_async)):
        for name in _METHODS:
            method = cls.__dict__.get(name)
            if method is not None and not hasattr(method, _ORIGINAL):
                setattr(cls, name, wrap(method))
    return True


def unpatch_openai() -> None:
    """Put the original methods back (only where the wrapper is still ours and on top)."""
    try:
        module = importlib.import_module(_MODULE)
    except ImportError:
        return
    for cls in (module.Completions, module.AsyncCompletions):
        for name in _METHODS:
            original = getattr(cls.__dict__.get(name), _ORIGINAL, None)
            if original is not None:
                setattr(cls, name, original)


def is_patched() -> bool:
    """Whether `Completions.create` is currently our wrapper."""
    try:
        module = importlib.import_module(_MODULE)
    except ImportError:
        return False
    return hasattr(module.Completions.__dict__.get("create"), _ORIGINAL)


def _wrap_sync(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _start(self, kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        with _calling(call):
            result = original(self, *args, **kwargs)
        return _finish(call, result)

    setattr(create, _ORIGINAL, original)
    return create


def _wrap_async(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _start(self, kwargs)
        if call is None:
            return await original(self, *args, **kwargs)
        with _calling(call):
            result = await original(self, *args, **kwargs)
        return _finish(call, result)

    setattr(create, _ORIGINAL, original)
    return create


@contextlib.contextmanager
def _calling(call: GenAISpan) -> Iterator[None]:
    """Around the original `create()`: the span is current during the HTTP call, so that
    transport spans nest under it, and a call that raises ends the span with the error."""
    from opentelemetry import trace

    try:
        with trace.use_span(call.span, end_on_exit=False, record_exception=False,
                            set_status_on_exception=False):
            yield
    except BaseException as exc:
        call.fail(exc)
        call.end()
        raise


# --- request ---------------------------------------------------------------------------------
class _OpenAISpan(GenAISpan):
    """A GenAISpan that remembers when the request went out, for time to first chunk."""

    started: float


def _start(resource: Any, kwargs: dict[str, Any]) -> _OpenAISpan | None:
    """Open the span for a `create()` call; None (call untraced) if anything goes wrong."""
    try:
        messages = kwargs.get("messages")
        if messages is not None and not isinstance(messages, list | tuple):
            kwargs["messages"] = messages = list(messages)  # read a one-shot iterable once
        extra_body = kwargs.get("extra_body")
        params = {k: v for k, v in (extra_body or {}).items() if k in _PARAMS} \
            if isinstance(extra_body, Mapping) else {}
        params.update({k: kwargs[k] for k in _PARAMS if k in kwargs})
        model = kwargs.get("model")
        address, port = _server(resource)
        tier = kwargs.get("service_tier")
        tools = kwargs.get("tools")
        call = _OpenAISpan(
            current(),
            operation="chat",
            provider=_provider(resource),
            model=model if isinstance(model, str) else None,
            params=params,
            messages=messages,
            attributes={
                semconv.SERVER_ADDRESS: address,
                semconv.SERVER_PORT: port,
                semconv.OPENAI_API_TYPE: "chat_completions",
                semconv.OPENAI_REQUEST_SERVICE_TIER: tier if isinstance(tier, str) else None,
            },
            content_attributes={
                semconv.TOOL_DEFINITIONS: semconv.to_json(tools)
                if isinstance(tools, list | tuple) and tools else None,
            },
        )
        call.started = time.monotonic()
        return call
    except Exception:
        logger.debug("watchkeeper: not tracing an openai call", exc_info=True)
        return None


def _server(resource: Any) -> tuple[str | None, int | None]:
    """`server.address` and `server.port` from the client's base URL."""
    base_url = getattr(getattr(resource, "_client", None), "base_url", None)
    if base_url is None:
        return None, None
    url = urlsplit(str(base_url))
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    return url.hostname, port


def _provider(resource: Any) -> str:
    client = type(getattr(resource, "_client", None)).__name__
    return "azure.ai.openai" if "Azure" in client else "openai"


# --- response --------------------------------------------------------------------------------
def _finish(call: _OpenAISpan, result: Any) -> Any:
    """Record a completion and end the span, or hand a stream to a proxy that will."""
    try:
        from openai import AsyncStream, Stream

        if isinstance(result, Stream):
            return TracedStream(result, _StreamRecorder(call))
        if isinstance(result, AsyncStream):
            return TracedAsyncStream(result, _StreamRecorder(call))
        if semconv.field(result, "choices") is not None:
            _record_completion(call, result)
        # Anything else (with_raw_response / with_streaming_response) keeps request data only.
    except Exception:
        logger.debug("watchkeeper: could not record an openai response", exc_info=True)
    call.end()
    return result


def _record_completion(call: GenAISpan, completion: Any) -> None:
    choices = sorted(semconv.field(completion, "choices") or (),
                     key=lambda c: semconv.field(c, "index") or 0)
    call.respond(
        output_messages=[
            semconv.message_from_response(
                semconv.field(c, "message"), semconv.field(c, "finish_reason"))
            for c in choices
        ],
        response_id=semconv.field(completion, "id"),
        response_model=semconv.field(completion, "model"),
        finish_reasons=[semconv.field(c, "finish_reason") for c in choices],
        attributes=_openai_response_attributes(completion),
        **semconv.usage_values(semconv.field(completion, "usage")),
    )


def _openai_response_attributes(response: Any) -> dict[str, Any]:
    return {
        semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: semconv.field(response, "system_fingerprint"),
        semconv.OPENAI_RESPONSE_SERVICE_TIER: semconv.field(response, "service_tier"),
    }


class _ChoiceBuffer:
    """The deltas of one streamed choice, joined back into a message."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None

    def add(self, choice: Any) -> None:
        delta = semconv.field(choice, "delta")
        content = semconv.field(delta, "content")
        if isinstance(content, str):
            self.text.append(content)
        reasoning = semconv.field(delta, "reasoning_content") or semconv.field(delta, "reasoning")
        if isinstance(reasoning, str):
            self.reasoning.append(reasoning)
        for tool_call in semconv.field(delta, "tool_calls") or ():
            index = semconv.field(tool_call, "index") or 0
            buffer = self.tool_calls.setdefault(index, {"id": None, "name": "", "arguments": []})
            buffer["id"] = semconv.field(tool_call, "id") or buffer["id"]
            function = semconv.field(tool_call, "function")
            buffer["name"] += semconv.field(function, "name") or ""
            buffer["arguments"].append(semconv.field(function, "arguments") or "")
        self.finish_reason = semconv.field(choice, "finish_reason") or self.finish_reason

    def message(self) -> semconv.Message:
        return semconv.output_message(
            text="".join(self.text) or None,
            reasoning="".join(self.reasoning) or None,
            tool_calls=[
                semconv.tool_call_part(c["id"], c["name"], "".join(c["arguments"]))
                for _, c in sorted(self.tool_calls.items())
            ],
            finish=self.finish_reason,
        )


_CHUNK_META = ("id", "model", "system_fingerprint", "service_tier")


class _StreamRecorder:
    """Accumulates chunks into the response, and ends the span when the stream ends."""

    def __init__(self, call: _OpenAISpan) -> None:
        self._call = call
        self._choices: dict[int, _ChoiceBuffer] = {}
        self._first_chunk_s: float | None = None
        self._meta: dict[str, Any] = {}  # id, model, ...: the last non-empty value of each
        self._usage: Any = None

    def observe(self, chunk: Any) -> None:
        if self._call.ended:
            return
        try:
            if self._first_chunk_s is None:
                self._first_chunk_s = time.monotonic() - self._call.started
            for name in _CHUNK_META:
                value = semconv.field(chunk, name)
                if value:
                    self._meta[name] = value
            self._usage = semconv.field(chunk, "usage") or self._usage
            for choice in semconv.field(chunk, "choices") or ():
                index = semconv.field(choice, "index") or 0
                self._choices.setdefault(index, _ChoiceBuffer()).add(choice)
        except Exception:
            logger.debug("watchkeeper: could not read a stream chunk", exc_info=True)

    def finish(self) -> None:
        if self._call.ended:
            return
        self._record()
        self._call.end()

    def fail(self, exc: BaseException) -> None:
        if self._call.ended:
            return
        self._record()
        self._call.fail(exc)
        self._call.end()

    def _record(self) -> None:
        try:
            choices = [c for _, c in sorted(self._choices.items())]
            attributes = _openai_response_attributes(self._meta)
            attributes[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] = self._first_chunk_s
            usage = semconv.usage_values(self._usage)
            if self._first_chunk_s is not None and usage["output_tokens"]:
                streaming_s = time.monotonic() - self._call.started - self._first_chunk_s
                if streaming_s > 0:
                    attributes[semconv.OUTPUT_TOKENS_PER_SECOND] = \
                        usage["output_tokens"] / streaming_s
            self._call.respond(
                output_messages=[c.message() for c in choices],
                response_id=self._meta.get("id"),
                response_model=self._meta.get("model"),
                finish_reasons=[c.finish_reason for c in choices],
                attributes=attributes,
                **usage,
            )
        except Exception:
            logger.debug("watchkeeper: could not record a streamed response", exc_info=True)
