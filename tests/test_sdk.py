"""The app-side SDK against the real openai client, the real OpenTelemetry SDK and real OTLP.

Spans are read back through the SDK's own InMemorySpanExporter, plugged in with
`instrument(span_processor=...)`; model calls go to the local fake OpenAI-compatible server;
the OTLP tests decode what the stock exporters put on the wire.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

import watchkeeper.collectors as wk
from watchkeeper.agent.demo.llm_server import LLMServer
from watchkeeper.collectors.sdk import semconv
from watchkeeper.collectors.sdk.setup import traces_url

SYSTEM = "You are a helpful assistant."
QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France."
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


# --- fixtures and helpers --------------------------------------------------------------------
@pytest.fixture(scope="module")
def llm() -> Iterator[LLMServer]:
    with LLMServer() as server:
        yield server


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """An active instrumentation whose spans land in memory, taken down after the test."""
    memory = InMemorySpanExporter()
    inst = wk.instrument("sdk-test", span_processor=SimpleSpanProcessor(memory),
                         set_global=False)
    yield memory
    inst.shutdown()


@pytest.fixture
def client(llm: LLMServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0)


@pytest.fixture
def aclient(llm: LLMServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()}


def doc(span: ReadableSpan, key: str) -> Any:
    value = (span.attributes or {})[key]
    assert isinstance(value, str)
    return json.loads(value)


def assert_chat_span(span: ReadableSpan, llm: LLMServer, *, answer: str = ANSWER) -> None:
    """The latest-convention shape every openai chat span must have."""
    a = attrs(span)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == int(llm.base_url.split(":")[2].split("/")[0])
    assert doc(span, "gen_ai.system_instructions") == [{"type": "text", "content": SYSTEM}]
    assert doc(span, "gen_ai.input.messages") == [
        {"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]
    assert doc(span, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [{"type": "text", "content": answer}],
         "finish_reason": "stop"}]


# --- openai: plain calls ---------------------------------------------------------------------
def test_sync_call(exporter: InMemorySpanExporter, client: openai.OpenAI, llm: LLMServer) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, max_tokens=50, top_p=0.9,
        seed=7, stop=["\n\n"])
    assert reply.choices[0].message.content == ANSWER  # the app sees the untouched response
    span = only_span(exporter)
    assert_chat_span(span, llm)
    a = attrs(span)
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.seed"] == 7
    assert a["gen_ai.request.stop_sequences"] == ["\n\n"]
    assert a["gen_ai.response.id"] == "chatcmpl-fake123"
    assert a["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens  # type: ignore[union-attr]
    assert a["gen_ai.usage.output_tokens"] == 6
    assert a["openai.response.system_fingerprint"] == "fp_fake"
    assert "gen_ai.request.stream" not in a


def test_async_call(
    exporter: InMemorySpanExporter, aclient: openai.AsyncOpenAI, llm: LLMServer
) -> None:
    async def call() -> str | None:
        reply = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        return reply.choices[0].message.content

    assert asyncio.run(call()) == ANSWER
    span = only_span(exporter)
    assert_chat_span(span, llm)
    assert attrs(span)["gen_ai.usage.output_tokens"] == 6


def test_error_call_is_recorded_and_reraised(
    exporter: InMemorySpanExporter, client: openai.OpenAI
) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                       extra_body={"fake_error": 500})
    assert raised.value.status_code == 500
    span = only_span(exporter)
    a = attrs(span)
    assert span.status.status_code is StatusCode.ERROR
    assert a["error.type"] == "InternalServerError"
    assert a["http.response.status_code"] == 500
    assert [e.name for e in span.events] == ["exception"]
    assert "gen_ai.output.messages" not in a
    assert a["gen_ai.request.model"] == "gpt-4o-mini"


def test_capture_content_false_keeps_prompts_out(client: openai.OpenAI) -> None:
    memory = InMemorySpanExporter()
    with wk.instrument("sdk-test", span_processor=SimpleSpanProcessor(memory),
                       set_global=False, capture_content=False):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with wk.llm_call(model="m", prompt="secret") as call:
            call.record(output="also secret")
    for span in memory.get_finished_spans():
        a = attrs(span)
        assert not {"gen_ai.input.messages", "gen_ai.output.messages",
                    "gen_ai.system_instructions"} & a.keys()
        assert "secret" not in json.dumps(a)
    assert attrs(memory.get_finished_spans()[0])["gen_ai.usage.output_tokens"] == 6


def test_one_shot_message_iterables_still_reach_the_model(
    exporter: InMemorySpanExporter, client: openai.OpenAI
) -> None:
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=iter(MESSAGES))
    assert reply.choices[0].message.content == ANSWER
    assert doc(only_span(exporter), "gen_ai.system_instructions")[0]["content"] == SYSTEM


# --- openai: streams -------------------------------------------------------------------------
def test_sync_stream(exporter: InMemorySpanExporter, client: openai.OpenAI, llm: LLMServer) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True,
        stream_options={"include_usage": True})
    assert isinstance(stream, openai.Stream)
    assert stream.response.status_code == 200  # attribute passthrough
    with stream as chunks:
        first = next(chunks)
        assert first.choices[0].delta.role == "assistant"
        assert exporter.get_finished_spans() == ()  # the span lives as long as the stream
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    span = only_span(exporter)
    assert_chat_span(span, llm)
    a = attrs(span)
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.response.id"] == "chatcmpl-fakeSTREAM123"
    assert a["gen_ai.usage.output_tokens"] == 6
    assert a["gen_ai.response.time_to_first_chunk"] >= 0
    assert a["watchkeeper.response.output_tokens_per_second"] > 0


def test_async_stream(
    exporter: InMemorySpanExporter, aclient: openai.AsyncOpenAI, llm: LLMServer
) -> None:
    async def call() -> str:
        stream = await aclient.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True,
            stream_options={"include_usage": True})
        assert isinstance(stream, openai.AsyncStream)
        async with stream:
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert asyncio.run(call()) == ANSWER
    span = only_span(exporter)
    assert_chat_span(span, llm)
    assert attrs(span)["gen_ai.usage.input_tokens"] > 0


def test_stream_closed_early_ends_span_with_what_was_read(
    exporter: InMemorySpanExporter, client: openai.OpenAI
) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True,
        extra_body={"fake_reply": "one two three four"})
    assert isinstance(stream, openai.Stream)
    next(stream)
    next(stream)
    stream.close()
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.UNSET
    assert doc(span, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [{"type": "text", "content": "one "}],
         "finish_reason": "unknown"}]
    assert "gen_ai.response.finish_reasons" not in attrs(span)


def test_abandoned_stream_ends_span_when_collected(
    exporter: InMemorySpanExporter, client: openai.OpenAI
) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)
    next(stream)
    del stream
    gc.collect()
    assert only_span(exporter).name == "chat gpt-4o-mini"


def test_async_stream_closed_early(
    exporter: InMemorySpanExporter, aclient: openai.AsyncOpenAI
) -> None:
    async def call() -> None:
        stream = await aclient.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True)
        assert isinstance(stream, openai.AsyncStream)
        await stream.__anext__()
        await stream.close()

    asyncio.run(call())
    assert only_span(exporter).status.status_code is StatusCode.UNSET


def test_stream_helper_goes_through_the_wrapper(
    exporter: InMemorySpanExporter, client: openai.OpenAI, llm: LLMServer
) -> None:
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == ANSWER
    assert_chat_span(only_span(exporter), llm)


def test_parse_is_traced_too(exporter: InMemorySpanExporter, client: openai.OpenAI) -> None:
    class City(BaseModel):
        city: str

    parsed = client.chat.completions.parse(
        model="gpt-4o-mini", messages=MESSAGES, response_format=City,
        extra_body={"fake_reply": '{"city": "Paris"}'})
    assert parsed.choices[0].message.parsed == City(city="Paris")
    a = attrs(only_span(exporter))
    assert a["gen_ai.output.type"] == "json"
    assert a["gen_ai.response.finish_reasons"] == ["stop"]


# --- patching lifecycle ----------------------------------------------------------------------
def test_instrument_twice_does_not_double_wrap(
    exporter: InMemorySpanExporter, client: openai.OpenAI
) -> None:
    from openai.resources.chat.completions import AsyncCompletions, Completions

    active = wk.instrument("again", span_processor=SimpleSpanProcessor(InMemorySpanExporter()))
    assert wk.instrument("and again") is active
    for cls in (Completions, AsyncCompletions):
        for name in ("create", "parse"):
            original = cls.__dict__[name].__watchkeeper_original__
            assert not hasattr(original, "__watchkeeper_original__")
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(exporter.get_finished_spans()) == 1


def test_uninstrument_restores_openai(llm: LLMServer, client: openai.OpenAI) -> None:
    from openai.resources.chat.completions import Completions

    before = Completions.__dict__["create"]
    before_parse = Completions.__dict__["parse"]
    memory = InMemorySpanExporter()
    inst = wk.instrument("sdk-test", span_processor=SimpleSpanProcessor(memory),
                         set_global=False)
    try:
        assert inst.openai_instrumented
        assert Completions.__dict__["create"] is not before
        inst.uninstrument()
        assert Completions.__dict__["create"] is before
        assert Completions.__dict__["parse"] is before_parse
        assert not inst.openai_instrumented
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert memory.get_finished_spans() == ()
        with wk.llm_call(model="m", prompt="hi"):  # explicit tracing keeps working
            pass
        assert len(memory.get_finished_spans()) == 1
    finally:
        inst.shutdown()
    assert Completions.__dict__["create"] is before


# --- llm_call --------------------------------------------------------------------------------
def test_llm_call_context_manager(exporter: InMemorySpanExporter) -> None:
    with wk.llm_call(model="llama-3-8b", provider="vllm", prompt="Say hi", system="Be terse.",
                     temperature=0.1, max_tokens=20, top_k=40, repetition_penalty=1.1) as call:
        call.record(output="Hi!", input_tokens=9, output_tokens=2, finish_reason="stop",
                    response_model="llama-3-8b-instruct", response_id="r-1")
    span = only_span(exporter)
    a = attrs(span)
    assert span.name == "chat llama-3-8b"
    assert span.kind is SpanKind.CLIENT
    assert call.trace_id == f"{span.context.trace_id:032x}"
    assert call.span_id == f"{span.context.span_id:016x}"
    assert a == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "vllm",
        "gen_ai.request.model": "llama-3-8b",
        "gen_ai.request.temperature": 0.1,
        "gen_ai.request.top_k": 40.0,
        "gen_ai.request.max_tokens": 20,
        "watchkeeper.request.repetition_penalty": 1.1,
        "gen_ai.system_instructions": '[{"type":"text","content":"Be terse."}]',
        "gen_ai.input.messages":
            '[{"role":"user","parts":[{"type":"text","content":"Say hi"}]}]',
        "gen_ai.output.messages":
            '[{"role":"assistant","parts":[{"type":"text","content":"Hi!"}],'
            '"finish_reason":"stop"}]',
        "gen_ai.response.id": "r-1",
        "gen_ai.response.model": "llama-3-8b-instruct",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 9,
        "gen_ai.usage.output_tokens": 2,
    }


def test_llm_call_is_the_parent_of_work_inside_it(exporter: InMemorySpanExporter,
                                                  client: openai.OpenAI) -> None:
    with wk.llm_call(model="router", operation="invoke_agent", messages=MESSAGES) as call:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    inner, outer = exporter.get_finished_spans()
    assert outer.name == "invoke_agent router"
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert call.span_context == outer.context


def test_llm_call_error_propagates(exporter: InMemorySpanExporter) -> None:
    with pytest.raises(TimeoutError), wk.llm_call(model="m", prompt="p"):
        raise TimeoutError("model took too long")
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "TimeoutError"
    assert span.events[0].name == "exception"


def test_llm_call_decorator_sync(exporter: InMemorySpanExporter) -> None:
    @wk.llm_call(model="llama-3-8b", provider="vllm", temperature=0.3)
    def generate(prompt: str, *, style: str = "plain") -> str:
        return f"{style}: {prompt[::-1]}"

    assert generate("abc") == "plain: cba"
    assert generate.__name__ == "generate"
    span = only_span(exporter)
    assert doc(span, "gen_ai.input.messages") == [
        {"role": "user", "parts": [{"type": "text", "content": "abc"}]}]
    assert doc(span, "gen_ai.output.messages")[0]["parts"] == [
        {"type": "text", "content": "plain: cba"}]
    assert attrs(span)["gen_ai.request.temperature"] == 0.3


def test_llm_call_decorator_async_with_dict_result(exporter: InMemorySpanExporter) -> None:
    @wk.llm_call(model="tgi-model", provider="tgi")
    async def generate(*, messages: list[dict[str, str]]) -> dict[str, Any]:
        current = wk.current_call()
        assert current is not None
        await asyncio.sleep(0)
        return {"text": "fine", "input_tokens": 3, "output_tokens": 1, "finish_reason": "length"}

    result = asyncio.run(generate(messages=[{"role": "user", "content": "how are you"}]))
    assert result["text"] == "fine"
    span = only_span(exporter)
    a = attrs(span)
    assert a["gen_ai.usage.input_tokens"] == 3
    assert a["gen_ai.response.finish_reasons"] == ["length"]
    assert doc(span, "gen_ai.output.messages")[0]["finish_reason"] == "length"


def test_llm_call_decorator_error(exporter: InMemorySpanExporter) -> None:
    @wk.llm_call(model="m")
    async def broken(prompt: str) -> str:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        asyncio.run(broken("x"))
    assert only_span(exporter).status.status_code is StatusCode.ERROR


def test_llm_call_runs_once() -> None:
    call = wk.llm_call(model="m")
    with call:
        pass
    with pytest.raises(RuntimeError), call:
        pass


# --- feedback --------------------------------------------------------------------------------
def test_feedback_joins_the_calls_trace(exporter: InMemorySpanExporter) -> None:
    with wk.llm_call(model="m", prompt="p") as call:
        call.record(output="o")
    wk.feedback(call=call, thumbs="down", comment="wrong city", user_id="u-7")
    target, note = exporter.get_finished_spans()
    assert note.name == "gen_ai.feedback"
    assert note.kind is SpanKind.INTERNAL
    assert note.context.trace_id == target.context.trace_id
    assert note.parent is not None and note.parent.span_id == target.context.span_id
    assert [link.context for link in note.links] == [target.context]
    assert attrs(note) == {
        "watchkeeper.feedback.trace_id": call.trace_id,
        "watchkeeper.feedback.span_id": call.span_id,
        "watchkeeper.feedback.score": 0.0,
        "watchkeeper.feedback.thumbs": "down",
        "watchkeeper.feedback.comment": "wrong city",
        "user.id": "u-7",
    }


def test_feedback_by_hex_ids_from_another_request(exporter: InMemorySpanExporter) -> None:
    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    with wk.conversation("conv-9", user_id="u-1"):
        wk.feedback(trace_id=trace_id, span_id=span_id.upper(), score=0.75)
    note = only_span(exporter)
    assert f"{note.context.trace_id:032x}" == trace_id
    assert note.links[0].context.span_id == int(span_id, 16)
    a = attrs(note)
    assert a["watchkeeper.feedback.score"] == 0.75
    assert a["watchkeeper.feedback.span_id"] == span_id
    assert a["user.id"] == "u-1"
    assert a["gen_ai.conversation.id"] == "conv-9"
    assert "watchkeeper.feedback.thumbs" not in a


def test_feedback_with_trace_id_only_still_names_the_trace(
    exporter: InMemorySpanExporter,
) -> None:
    wk.feedback(trace_id="0af7651916cd43dd8448eb211c80319c", thumbs="up")
    note = only_span(exporter)
    assert attrs(note)["watchkeeper.feedback.trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert attrs(note)["watchkeeper.feedback.span_id"] == ""
    assert attrs(note)["watchkeeper.feedback.score"] == 1.0
    assert note.links == ()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"trace_id": "0af7651916cd43dd8448eb211c80319c"}, "score"),
    ({"score": 1.0}, "which call"),
    ({"span_id": "b7ad6b7169203331", "score": 1.0}, "trace_id"),
    ({"trace_id": "xyz", "score": 1.0}, "32 hex"),
    ({"trace_id": "0" * 32, "score": 1.0}, "not all zero"),
    ({"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "12", "score": 1.0}, "16 hex"),
    ({"trace_id": "0af7651916cd43dd8448eb211c80319c", "score": 4.0}, r"\[0, 1\]"),
    ({"trace_id": "0af7651916cd43dd8448eb211c80319c", "score": float("nan")}, "finite"),
    ({"trace_id": "0af7651916cd43dd8448eb211c80319c", "thumbs": "sideways"}, "'up' or 'down'"),
    ({"call": object(), "score": 1.0}, "llm_call, a Span or a SpanContext"),
    ({"call": None, "trace_id": None, "score": 1.0}, "which call"),
])
def test_feedback_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wk.feedback(**kwargs)


def test_feedback_on_a_call_that_never_ran() -> None:
    with pytest.raises(ValueError, match="not started"):
        wk.feedback(call=wk.llm_call(model="m"), thumbs="up")


# --- conversation context --------------------------------------------------------------------
def test_conversation_ids_reach_every_call(
    exporter: InMemorySpanExporter, client: openai.OpenAI
) -> None:
    with wk.conversation("conv-1", user_id="alice"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with wk.conversation("conv-2"):
            with wk.llm_call(model="m", prompt="p"):
                pass
            with wk.llm_call(model="m", prompt="p", user_id="bob"):
                pass
    with wk.llm_call(model="m", prompt="p"):
        pass
    ids = [(attrs(s).get("gen_ai.conversation.id"), attrs(s).get("user.id"))
           for s in exporter.get_finished_spans()]
    assert ids == [("conv-1", "alice"), ("conv-2", "alice"), ("conv-2", "bob"), (None, None)]


# --- message conversion ----------------------------------------------------------------------
def test_tool_calls_images_and_tool_results_convert_to_parts() -> None:
    system, messages = semconv.input_messages([
        {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
        {"role": "user", "content": [
            {"type": "text", "text": "Weather here?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "rainy, 14C"},
    ])
    assert system == [{"type": "text", "content": "Use tools."}]
    assert messages == [
        {"role": "user", "parts": [
            {"type": "text", "content": "Weather here?"},
            {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "iVBOR"},
            {"type": "uri", "modality": "image", "uri": "https://x.test/a.png"},
        ]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1",
                                         "name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1",
                                    "response": "rainy, 14C"}]},
    ]


def test_response_tool_calls_become_output_parts() -> None:
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "function": {"name": "lookup", "arguments": "not json"}}]}
    assert semconv.message_from_response(message, "tool_calls") == {
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "c1", "name": "lookup", "arguments": "not json"}],
        "finish_reason": "tool_call",
    }


# --- the import cost -------------------------------------------------------------------------
def test_collectors_import_does_not_load_openai_or_the_sdk() -> None:
    code = ("import sys, watchkeeper.collectors as c; "
            "assert 'openai' not in sys.modules and 'watchkeeper.collectors.sdk' not in "
            "sys.modules; c.llm_call; assert 'openai' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.stdout.strip() == "ok", out.stderr


# --- real OTLP on the wire -------------------------------------------------------------------
def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


class _Received:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], trace_service_pb2.ExportTraceServiceRequest]] = []
        self.event = threading.Event()

    def add(self, headers: dict[str, str],
            request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        self.requests.append(({k.lower(): v for k, v in headers.items()}, request))
        self.event.set()

    def spans(self) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
        """(resource attributes, span name, span attributes) for every received span."""
        return [(_attributes(rs.resource.attributes), span.name, _attributes(span.attributes))
                for _, request in self.requests for rs in request.resource_spans
                for ss in rs.scope_spans for span in ss.spans]


@pytest.fixture
def http_collector() -> Iterator[tuple[str, _Received]]:
    received = _Received()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            received.add({**self.headers, "path": self.path}, request)
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_otlp_http_export_reaches_a_collector(
    http_collector: tuple[str, _Received], client: openai.OpenAI
) -> None:
    endpoint, received = http_collector
    inst = wk.instrument("checkout", endpoint, token="s3cret", environment="staging",
                         resource_attributes={"k8s.namespace.name": "shop"}, set_global=False)
    try:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with wk.llm_call(model="m", prompt="p") as call:
            pass
        wk.feedback(call=call, thumbs="up")
    finally:
        inst.shutdown()  # flushes the batch
    assert reply.choices[0].message.content == ANSWER
    headers = received.requests[0][0]
    assert headers["path"] == "/v1/traces"
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["content-type"] == "application/x-protobuf"
    spans = received.spans()
    assert [name for _, name, _ in spans] == ["chat gpt-4o-mini", "chat m", "gen_ai.feedback"]
    resource, _, chat = spans[0]
    assert resource["service.name"] == "checkout"
    assert resource["deployment.environment.name"] == "staging"
    assert resource["deployment.environment"] == "staging"
    assert resource["k8s.namespace.name"] == "shop"
    assert chat["gen_ai.provider.name"] == "openai"
    assert chat["gen_ai.response.finish_reasons"] == ["stop"]
    assert chat["gen_ai.usage.output_tokens"] == 6
    assert json.loads(chat["gen_ai.output.messages"])[0]["parts"][0]["content"] == ANSWER
    assert spans[2][2]["watchkeeper.feedback.score"] == 1.0


def test_otlp_grpc_export_reaches_a_collector(client: openai.OpenAI) -> None:
    received = _Received()

    class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            received.add(dict(context.invocation_metadata()), request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        inst = wk.instrument("grpc-app", f"http://127.0.0.1:{port}", protocol="grpc",
                             token="t0k", set_global=False)
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        finally:
            inst.shutdown()
    finally:
        server.stop(grace=None)
    assert received.requests[0][0]["authorization"] == "Bearer t0k"
    ((resource, name, chat),) = received.spans()
    assert resource["service.name"] == "grpc-app"
    assert name == "chat gpt-4o-mini"
    assert chat["gen_ai.request.model"] == "gpt-4o-mini"


def test_a_down_collector_never_breaks_the_model_call(
    client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")
    with socket_port() as port:
        pass  # a port that nothing listens on any more
    inst = wk.instrument("lonely", f"http://127.0.0.1:{port}", set_global=False)
    try:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with wk.llm_call(model="m", prompt="p"):
            pass
    finally:
        inst.shutdown()
    assert reply.choices[0].message.content == ANSWER


def socket_port() -> Any:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))

    class _Port:
        def __enter__(self) -> int:
            return int(sock.getsockname()[1])

        def __exit__(self, *exc: object) -> None:
            sock.close()

    return _Port()


def test_instrument_rejects_unknown_protocol() -> None:
    with pytest.raises(ValueError, match="protocol"):
        wk.instrument("x", protocol="thrift", set_global=False)


def test_traces_url() -> None:
    assert traces_url("http://sidecar:4318") == "http://sidecar:4318/v1/traces"
    assert traces_url("http://sidecar:4318/") == "http://sidecar:4318/v1/traces"
    assert traces_url("https://gw/otlp/v1/traces") == "https://gw/otlp/v1/traces"
