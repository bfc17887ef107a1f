"""`llm_call`: a GenAI span around any model call the SDK cannot wrap by itself.

Self-hosted models (vLLM, TGI, llama.cpp), in-process pipelines and in-house gateways have no
client library to patch. `llm_call` gives them the same span the openai wrapper emits, as a
context manager (the app records the answer) or as a decorator (the answer is read from the
function's return value). The call exposes its trace and span ids so that end-user feedback
can point back at it.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

from . import semconv
from .spans import GenAISpan
from .tracing import current

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

EXTRA_PARAM_PREFIX = "watchkeeper.request."
_current_call: ContextVar[LLMCall | None] = ContextVar("watchkeeper_llm_call", default=None)


class LLMCall:
    """One model call: `with llm_call(...) as call:` (or `async with`), entered once, or
    `@llm_call(...)` on a function, each invocation of which gets its own call.

    `request_params` are the sampling parameters sent to the model (temperature, max_tokens,
    top_p, top_k, stop, seed, ...): the conventional ones become `gen_ai.request.*`, others
    scalars `watchkeeper.request.*`. `attributes` are added to the span as they are.
    """

    def __init__(
        self,
        model: str,
        *,
        provider: str = "custom",
        operation: str = "chat",
        messages: Sequence[Any] | None = None,
        prompt: str | None = None,
        system: str | Sequence[Any] | None = None,
        conversation_id: str | None = None,
        user_id: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        **request_params: Any,
    ) -> None:
        if messages is not None and prompt is not None:
            raise ValueError("llm_call: pass messages or prompt, not both")
        self.model = model
        self.provider = provider
        self.operation = operation
        self.messages = messages
        self.prompt = prompt
        self.system = system
        self.conversation_id = conversation_id
        self.user_id = user_id
        self.request_params = request_params
        self.attributes = dict(attributes or {})
        self._span: GenAISpan | None = None
        self._context_token: Token[Context] | None = None
        self._call_token: Token[LLMCall | None] | None = None
        self._response: dict[str, Any] = {}

    # --- ids for feedback --------------------------------------------------------------------
    @property
    def span_context(self) -> trace.SpanContext:
        """The span's context; available from entering the call onwards (also after exit)."""
        if self._span is None:
            raise RuntimeError("llm_call has not started: use it in a with block first")
        return self._span.span_context

    @property
    def trace_id(self) -> str:
        """The trace id as 32 hex digits, the form `feedback(trace_id=...)` takes."""
        return trace.format_trace_id(self.span_context.trace_id)

    @property
    def span_id(self) -> str:
        """The span id as 16 hex digits, the form `feedback(span_id=...)` takes."""
        return trace.format_span_id(self.span_context.span_id)

    # --- recording ---------------------------------------------------------------------------
    def record(
        self,
        output: str | None = None,
        *,
        output_messages: Sequence[Any] | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        finish_reason: str | None = None,
        response_model: str | None = None,
        response_id: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> None:
        """Record the model's answer; may be called several times, later values win.

        `output` is the completion text; `output_messages` are whole messages instead (OpenAI
        style or the latest GenAI schema). `finish_reason` defaults to "stop" when an output
        is recorded: an answer handed back is taken as complete.
        """
        if self._span is not None and self._span.ended:
            logger.warning("watchkeeper: llm_call.record() after the call ended is ignored")
            return
        values = {
            "output": output, "output_messages": output_messages, "input_tokens": input_tokens,
            "output_tokens": output_tokens, "finish_reason": finish_reason,
            "response_model": response_model, "response_id": response_id,
        }
        self._response.update({k: v for k, v in values.items() if v is not None})
        if attributes:
            self._response.setdefault("attributes", {}).update(attributes)

    def _flush_response(self, span: GenAISpan) -> None:
        try:
            self._respond(span)
        except Exception:
            logger.debug("watchkeeper: could not record an llm_call response", exc_info=True)

    def _respond(self, span: GenAISpan) -> None:
        r = self._response
        finish = r.get("finish_reason")
        if finish is None and ("output" in r or "output_messages" in r):
            finish = "stop"
        outputs: list[semconv.Message] = []
        if "output_messages" in r:
            outputs = [_output_message(m, finish) for m in r["output_messages"]]
        elif "output" in r:
            outputs = [semconv.output_message(text=r["output"], finish=finish)]
        span.respond(
            output_messages=outputs,
            attributes=r.get("attributes"),
            response_id=r.get("response_id"),
            response_model=r.get("response_model"),
            finish_reasons=[finish] if finish else None,
            input_tokens=r.get("input_tokens"),
            output_tokens=r.get("output_tokens"),
        )

    # --- context manager ---------------------------------------------------------------------
    def __enter__(self) -> LLMCall:
        if self._span is not None:
            raise RuntimeError("an llm_call runs once; create a new llm_call() for another call")
        self._span = self._start()
        self._context_token = otel_context.attach(trace.set_span_in_context(self._span.span))
        self._call_token = _current_call.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        if span is None:
            return
        try:
            if exc is not None:
                span.fail(exc)
            self._flush_response(span)
            span.end()
        finally:
            if self._call_token is not None:
                _current_call.reset(self._call_token)
            if self._context_token is not None:
                otel_context.detach(self._context_token)

    async def __aenter__(self) -> LLMCall:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _start(self) -> GenAISpan:
        known = {k: v for k, v in self.request_params.items() if k in semconv.KNOWN_REQUEST_PARAMS}
        extra = {
            EXTRA_PARAM_PREFIX + k: v for k, v in self.request_params.items()
            if k not in semconv.KNOWN_REQUEST_PARAMS and isinstance(v, str | bool | int | float)
        }
        messages = self.messages
        if messages is None and self.prompt is not None:
            messages = [{"role": "user", "content": self.prompt}]
        return GenAISpan(
            current(),
            operation=self.operation,
            provider=self.provider,
            model=self.model,
            params=known,
            messages=messages,
            system=self.system,
            conversation_id=self.conversation_id,
            user_id=self.user_id,
            attributes={**extra, **self.attributes},
        )

    # --- decorator ---------------------------------------------------------------------------
    def __call__(self, func: F) -> F:
        """Trace every call of `func`; each invocation gets its own span.

        The input is the `messages` or `prompt` keyword argument, else the first positional
        str argument; the output is a str return value, or the "text"/"content" of a dict
        (whose "input_tokens", "output_tokens" and "finish_reason" are recorded too).
        Inside the function, `current_call()` returns the call, to record more.
        """
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError("llm_call cannot decorate a generator; use `with llm_call(...)` "
                            "inside it instead")
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_traced(*args: Any, **kwargs: Any) -> Any:
                with self._for_invocation(args, kwargs) as call:
                    result = await func(*args, **kwargs)
                    call._record_return(result)
                return result

            return cast(F, async_traced)

        @functools.wraps(func)
        def traced(*args: Any, **kwargs: Any) -> Any:
            with self._for_invocation(args, kwargs) as call:
                result = func(*args, **kwargs)
                call._record_return(result)
            return result

        return cast(F, traced)

    def _for_invocation(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> LLMCall:
        messages, prompt = self.messages, self.prompt
        if messages is None and prompt is None:
            messages, prompt = _infer_input(args, kwargs)
        return LLMCall(
            self.model, provider=self.provider, operation=self.operation, messages=messages,
            prompt=prompt, system=self.system, conversation_id=self.conversation_id,
            user_id=self.user_id, attributes=self.attributes, **self.request_params,
        )

    def _record_return(self, result: Any) -> None:
        if "output" in self._response or "output_messages" in self._response:
            return  # the function recorded its answer itself
        try:
            if isinstance(result, str):
                self.record(output=result)
            elif isinstance(result, Mapping):
                text = result.get("text", result.get("content"))
                self.record(
                    output=text if isinstance(text, str) else None,
                    input_tokens=_int_or_none(result.get("input_tokens")),
                    output_tokens=_int_or_none(result.get("output_tokens")),
                    finish_reason=_str_or_none(result.get("finish_reason")),
                )
        except Exception:
            logger.debug("watchkeeper: could not read an llm_call return value", exc_info=True)


llm_call = LLMCall
"""Trace one model call: `with llm_call(...) as call:` or `@llm_call(...)` (see LLMCall)."""


def current_call() -> LLMCall | None:
    """The innermost `llm_call` in progress, e.g. to record tokens from a decorated function."""
    return _current_call.get()


def _infer_input(
    args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Sequence[Any] | None, str | None]:
    messages = kwargs.get("messages")
    if isinstance(messages, list | tuple):
        return messages, None
    prompt = kwargs.get("prompt")
    if isinstance(prompt, str):
        return None, prompt
    for arg in args:
        if isinstance(arg, str):
            return None, arg
    return None, None


def _output_message(message: Any, finish: str | None) -> semconv.Message:
    if isinstance(message, Mapping) and isinstance(message.get("parts"), list):
        return {"finish_reason": semconv.finish_reason(finish), **message}
    return semconv.message_from_response(message, finish)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
