"""Synthetic GenAI spans for the sidecar and ingest benchmarks, as OTLP protobuf.

Each span is what Watchkeeper's SDK emits for one chat completion (latest GenAI conventions:
`gen_ai.input.messages` / `gen_ai.output.messages` / `gen_ai.system_instructions` as JSON
strings, request and response metadata, usage), with a user prompt of about `prompt_bytes`
bytes of ordinary prose, some sentences with dates and numbers as real prompts have. Every
4th prompt carries an e-mail address and a phone number, every 8th a card number (Luhn-valid)
and every 16th an API key, so redaction has real work; every e-mail address ends in
`@example.com`, which lets a consumer check that none got through.
Deterministic for a given seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

PROSE = (
    "I am planning a trip and I would like some help with the itinerary.",
    "Could you summarise the main points of the attached meeting notes for the team?",
    "The customer says the invoice total looks wrong and asks for an explanation.",
    "Please rewrite this paragraph so that it sounds friendlier but stays concise.",
    "Our deployment failed last night after the configuration change was rolled out.",
    "Explain the difference between a process and a thread to a new engineer.",
    "What would be a good name for a small bakery that also sells coffee in the morning?",
    "List the steps to reset a forgotten password in the mobile application.",
    "The report should compare the quarterly results with the same period last year.",
    "Translate the following sentence into French and keep the formal tone of voice.",
    "The meeting moved to 14 March at 3 pm, room 204, and should take about 45 minutes.",
    "Order 58213 shipped on 2024-11-02 with 3 items; the tracking page shows version 2.4.",
)
NOW_NS = 1_760_000_000_000_000_000  # a fixed start time (2025-10-09): deterministic bodies
SYSTEM = "You are a helpful assistant for Example Corp. Answer briefly and politely."
REPLY = ("Thanks for the details. Here is a short answer: start with the overview, then "
         "follow the three steps listed below, and let me know if anything is unclear.")


def _kv(key: str, value: object) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    elif isinstance(value, list):
        kv.value.array_value.values.extend(AnyValue(string_value=str(v)) for v in value)
    else:
        kv.value.string_value = str(value)
    return kv


def prompt(rng: random.Random, n: int, prompt_bytes: int) -> str:
    pii = []
    if n % 4 == 0:
        pii.append(f"My email is user{n}.name@example.com and my phone is "
                   f"+1 415 555 {n % 10000:04d}.")
    if n % 8 == 0:
        pii.append("My card number is 4111 1111 1111 1111.")
    if n % 16 == 0:
        pii.append(f"Use the key sk-proj-{n:08d}abcdefghijklmnopqrstuvwx for the API.")
    words: list[str] = [*pii]
    size = sum(len(p) + 1 for p in pii)
    while size < prompt_bytes:
        sentence = rng.choice(PROSE)
        words.append(sentence)
        size += len(sentence) + 1
    rng.shuffle(words)
    return " ".join(words)[:max(prompt_bytes, size)]


def span(rng: random.Random, n: int, trace_id: bytes, prompt_bytes: int, now_ns: int) -> Span:
    text = prompt(rng, n, prompt_bytes)
    reply = REPLY + (f" I will write to user{n}.name@example.com." if n % 4 == 0 else "")
    start = now_ns + n * 1_000_000
    s = Span(trace_id=trace_id, span_id=rng.randbytes(8), name="chat gpt-4o-mini",
             kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=start,
             end_time_unix_nano=start + rng.randint(200, 2000) * 1_000_000)
    s.attributes.extend([
        _kv("gen_ai.operation.name", "chat"),
        _kv("gen_ai.provider.name", "openai"),
        _kv("gen_ai.request.model", "gpt-4o-mini"),
        _kv("gen_ai.request.temperature", 0.2),
        _kv("gen_ai.request.max_tokens", 256),
        _kv("server.address", "api.openai.com"),
        _kv("server.port", 443),
        _kv("openai.api.type", "chat_completions"),
        _kv("gen_ai.conversation.id", f"conv-{n // 3:06d}"),
        _kv("user.id", f"user-{n % 500}"),
        _kv("gen_ai.system_instructions",
            json.dumps([{"type": "text", "content": SYSTEM}], separators=(",", ":"))),
        _kv("gen_ai.input.messages", json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": text}]}],
            ensure_ascii=False, separators=(",", ":"))),
        _kv("gen_ai.response.id", f"chatcmpl-{n:010d}"),
        _kv("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
        _kv("gen_ai.response.finish_reasons", ["stop"]),
        _kv("gen_ai.usage.input_tokens", len(text) // 4),
        _kv("gen_ai.usage.output_tokens", len(reply) // 4),
        _kv("openai.response.system_fingerprint", "fp_0123456789"),
        _kv("gen_ai.output.messages", json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": reply}],
              "finish_reason": "stop"}], ensure_ascii=False, separators=(",", ":"))),
    ])
    return s


def request(rng: random.Random, first: int, spans: int, spans_per_trace: int,
            prompt_bytes: int, now_ns: int = NOW_NS) -> ExportTraceServiceRequest:
    """One export request as an app's BatchSpanProcessor sends it: one resource, one scope."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([
        _kv("service.name", "bench-app"), _kv("deployment.environment.name", "bench"),
        _kv("k8s.namespace.name", "shop"), _kv("k8s.pod.name", "bench-app-7d9f8c-abcde"),
        _kv("telemetry.sdk.name", "opentelemetry"), _kv("telemetry.sdk.language", "python"),
        _kv("telemetry.sdk.version", "1.45.2"),
    ])
    ss = rs.scope_spans.add()
    ss.scope.name = "watchkeeper.collectors.sdk"
    ss.scope.version = "0.1.0"
    trace_id = b""
    for i in range(spans):
        n = first + i
        if i % spans_per_trace == 0:
            trace_id = rng.randbytes(16)
        ss.spans.append(span(rng, n, trace_id, prompt_bytes, now_ns))
    return req


def requests(count: int, spans: int, spans_per_trace: int, prompt_bytes: int,
             seed: int = 7) -> Iterator[ExportTraceServiceRequest]:
    rng = random.Random(seed)
    for r in range(count):
        yield request(rng, r * spans, spans, spans_per_trace, prompt_bytes)
