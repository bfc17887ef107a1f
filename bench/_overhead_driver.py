"""Per-call overhead of one GenAI instrumentation; runs inside whichever venv holds the library.

    <venv>/bin/python bench/_overhead_driver.py --impl IMPL [--calls N] [--reps R]

IMPL is watchkeeper, bare, openllmetry, traceloop or openlit.

Imports only the standard library, openai, the OpenTelemetry SDK and the one library named by
`--impl` (watchkeeper only for `--impl watchkeeper`), so the same file runs in the project's
venv (openai 3.x) and in the capture venvs under .cache/capture-envs (openai 2.x), where
OpenLLMetry and OpenLIT live. `bench/sdk_overhead.py` starts it and reads one JSON document
from its stdout.

Method, identical for every library:
- the openai client talks to an in-process `MockTransport` (httpx2 for openai 3, httpx for
  openai 2) that answers every request with the same canned chat completion: no socket, so
  network noise cannot drown a difference of microseconds;
- the unwrapped `Completions.create` is kept before the library patches anything, so the
  uninstrumented and the instrumented call run in one process, interleaved in blocks;
- spans go through a BatchSpanProcessor (the default of every library) to an exporter that
  counts and discards them (`--exporter encode` also serialises each batch to OTLP protobuf
  first, the CPU a real OTLP exporter spends on its worker thread); log records likewise;
- each block times N calls one by one; a repetition's overhead is median(instrumented) -
  median(uninstrumented) of its two blocks, and the result is the median over repetitions.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")
os.environ.setdefault("TRACELOOP_METRICS_ENABLED", "false")
os.environ.setdefault("TRACELOOP_TELEMETRY", "false")

import openai
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

REPO = Path(__file__).resolve().parents[1]
OPENLIT_PRICING = REPO / "tests" / "fixtures" / "capture" / "openlit-pricing.json"
MODEL = "gpt-4o-mini"
SYSTEM = "You are a helpful assistant."
QUESTION = "What is the capital of France?"
REPLY = "Paris is the capital of France."
CANNED = {
    "id": "chatcmpl-bench0001",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_bench",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": REPLY, "refusal": None}}],
    "usage": {"prompt_tokens": 24, "completion_tokens": 7, "total_tokens": 31,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
}


# --- the fake model ---------------------------------------------------------------------------
def make_client() -> openai.OpenAI:
    """An openai client whose HTTP transport is an in-process function returning CANNED."""
    if int(openai.__version__.split(".")[0]) >= 3:
        import httpx2 as http  # openai 3.x is built on httpx2
    else:
        import httpx as http  # type: ignore[no-redef]
    body = json.dumps(CANNED).encode()

    def answer(request: Any) -> Any:
        return http.Response(200, content=body, headers={"content-type": "application/json"})

    return openai.OpenAI(api_key="sk-bench-fake", base_url="http://llm.bench.local/v1",
                         max_retries=0,
                         http_client=http.Client(transport=http.MockTransport(answer)))


def request_kwargs(prompt_bytes: int) -> dict[str, Any]:
    question = QUESTION if prompt_bytes <= len(QUESTION) else (
        QUESTION + " " + "Please answer in one short sentence. " * prompt_bytes)[:prompt_bytes]
    return {"model": MODEL, "temperature": 0.2, "max_tokens": 50,
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": question}]}


# --- exporters ----------------------------------------------------------------------------------
class DiscardSpans(SpanExporter):
    """Counts spans and drops them; with `encode`, first serialises them as OTLP would."""

    def __init__(self, encode: bool) -> None:
        self.count = 0
        self.sample: ReadableSpan | None = None
        self._encode = None
        if encode:
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

            self._encode = encode_spans

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._encode is not None:
            self._encode(spans).SerializeToString()
        self.count += len(spans)
        for span in spans:
            if span.kind == trace.SpanKind.CLIENT or self.sample is None:
                self.sample = span
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""


def discard_logs(encode: bool) -> Any:
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

    class DiscardLogs(LogRecordExporter):  # type: ignore[misc]
        def __init__(self) -> None:
            self.count = 0
            self._encode = None
            if encode:
                from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs

                self._encode = encode_logs

        def export(self, batch: Sequence[Any]) -> Any:
            if self._encode is not None:
                self._encode(batch).SerializeToString()
            self.count += len(batch)
            return LogRecordExportResult.SUCCESS

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return True

        def shutdown(self) -> None:
            """Nothing to release."""

    return DiscardLogs()


# --- the instrumentations -----------------------------------------------------------------------
Call = Callable[[], Any]


class Harness:
    """The client, the unwrapped create, and the providers' exporters, for one library."""

    def __init__(self, prompt_bytes: int, encode: bool) -> None:
        from openai.resources.chat import completions

        self.completions = completions
        self.raw_create = completions.Completions.create  # before anything patches it
        self.client = make_client()
        self.kwargs = request_kwargs(prompt_bytes)
        self.spans = DiscardSpans(encode)
        self.logs: Any = None
        self.encode = encode
        self.provider: TracerProvider | None = None

    def baseline(self) -> Any:
        return self.raw_create(self.client.chat.completions, **self.kwargs)

    def instrumented(self) -> Any:
        return self.client.chat.completions.create(**self.kwargs)

    def sdk_provider(self, logs: bool = False) -> TracerProvider:
        provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
        provider.add_span_processor(BatchSpanProcessor(self.spans))
        trace.set_tracer_provider(provider)
        if logs:
            from opentelemetry import _logs
            from opentelemetry.sdk._logs import LoggerProvider
            from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

            self.logs = discard_logs(self.encode)
            logger_provider = LoggerProvider(resource=provider.resource)
            logger_provider.add_log_record_processor(BatchLogRecordProcessor(self.logs))
            _logs.set_logger_provider(logger_provider)
        self.provider = provider
        return provider

    def flush(self) -> None:
        from opentelemetry import _logs

        for provider in (trace.get_tracer_provider(), _logs.get_logger_provider()):
            if hasattr(provider, "force_flush"):
                provider.force_flush()


def setup_watchkeeper(h: Harness) -> Call:
    """Watchkeeper's SDK exactly as an app calls it, with the OTLP exporter swapped out."""
    from watchkeeper.collectors import instrument

    instrumentation = instrument("bench", capture_content=True,
                                 span_processor=BatchSpanProcessor(h.spans))
    h.provider = instrumentation.tracer_provider
    return h.instrumented


def setup_bare(h: Harness) -> Call:
    """The floor: a hand-written span with the attributes Watchkeeper's SDK records."""
    provider = h.sdk_provider()
    tracer = provider.get_tracer("bench.bare")
    kwargs = h.kwargs
    resource = h.client.chat.completions
    raw = h.raw_create

    def call() -> Any:
        messages = kwargs["messages"]
        system = [{"type": "text", "content": m["content"]} for m in messages
                  if m["role"] == "system"]
        inputs = [{"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
                  for m in messages if m["role"] != "system"]
        attrs = {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": kwargs["model"],
            "gen_ai.request.temperature": kwargs["temperature"],
            "gen_ai.request.max_tokens": kwargs["max_tokens"],
            "server.address": "llm.bench.local", "server.port": 80,
            "openai.api.type": "chat_completions",
            "gen_ai.system_instructions": json.dumps(system, separators=(",", ":")),
            "gen_ai.input.messages": json.dumps(inputs, separators=(",", ":")),
        }
        with tracer.start_as_current_span(f"chat {kwargs['model']}", kind=trace.SpanKind.CLIENT,
                                          attributes=attrs) as span:
            result = raw(resource, **kwargs)
            choice = result.choices[0]
            outputs = [{"role": choice.message.role, "finish_reason": choice.finish_reason,
                        "parts": [{"type": "text", "content": choice.message.content}]}]
            span.set_attributes({
                "gen_ai.response.id": result.id, "gen_ai.response.model": result.model,
                "gen_ai.response.finish_reasons": [choice.finish_reason],
                "gen_ai.usage.input_tokens": result.usage.prompt_tokens,
                "gen_ai.usage.output_tokens": result.usage.completion_tokens,
                "openai.response.system_fingerprint": result.system_fingerprint,
                "gen_ai.output.messages": json.dumps(outputs, separators=(",", ":")),
            })
        return result

    return call


def setup_openllmetry(h: Harness) -> Call:
    """OpenLLMetry's opentelemetry-instrumentation-openai on a plain SDK provider."""
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    provider = h.sdk_provider()
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    return h.instrumented


def setup_traceloop(h: Harness) -> Call:
    """OpenLLMetry the way its docs start it: Traceloop.init, only the openai instrumentation."""
    from traceloop.sdk import Traceloop
    from traceloop.sdk.instruments import Instruments

    Traceloop.init(app_name="bench", exporter=h.spans, telemetry_enabled=False,
                   instruments={Instruments.OPENAI}, disable_batch=False)
    return h.instrumented


def setup_openlit(h: Harness) -> Call:
    """openlit.init on providers set up beforehand (it reuses them), metrics off."""
    import openlit

    h.sdk_provider(logs=True)
    openlit.init(application_name="bench", environment="bench",
                 pricing_json=str(OPENLIT_PRICING), disable_metrics=True)
    return h.instrumented


SETUPS: dict[str, tuple[Callable[[Harness], Call], tuple[str, ...]]] = {
    "watchkeeper": (setup_watchkeeper, ("watchkeeper",)),
    "bare": (setup_bare, ()),
    "openllmetry": (setup_openllmetry, ("opentelemetry-instrumentation-openai",)),
    "traceloop": (setup_traceloop, ("traceloop-sdk", "opentelemetry-instrumentation-openai")),
    "openlit": (setup_openlit, ("openlit",)),
}
CORE = ("openai", "httpx", "httpx2", "opentelemetry-api", "opentelemetry-sdk", "protobuf",
        "wrapt")


# --- measuring ----------------------------------------------------------------------------------
def block(call: Call, n: int) -> list[int]:
    """Time n calls one by one (ns)."""
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        start = clock()
        call()
        out.append(clock() - start)
    return out


def _versions(names: Sequence[str]) -> dict[str, str]:
    out = {}
    for name in names:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def _span_summary(span: ReadableSpan | None) -> dict[str, Any]:
    if span is None:
        return {}
    attrs = dict(span.attributes or {})
    size = sum(len(k) + len(str(v)) for k, v in attrs.items())
    content = sorted(k for k, v in attrs.items() if isinstance(v, str) and QUESTION in v)
    return {"name": span.name, "attributes": len(attrs), "attribute_bytes": size,
            "events": len(span.events), "content_keys": content}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impl", required=True, choices=sorted(SETUPS))
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed block")
    parser.add_argument("--reps", type=int, default=5, help="interleaved block pairs")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--prompt-bytes", type=int, default=0,
                        help="pad the user message to this many bytes (0: the short question)")
    parser.add_argument("--exporter", choices=("discard", "encode"), default="discard")
    args = parser.parse_args()

    h = Harness(args.prompt_bytes, args.exporter == "encode")
    setup, packages = SETUPS[args.impl]
    call = setup(h)
    for _ in range(args.warmup):
        h.baseline()
        call()
    h.flush()
    before = h.spans.count
    logs_before = h.logs.count if h.logs is not None else 0
    baseline_ms: list[float] = []
    instrumented_ms: list[float] = []
    for rep in range(args.reps):
        gc.collect()
        pair = [(h.baseline, baseline_ms), (call, instrumented_ms)]
        for fn, sink in pair if rep % 2 == 0 else reversed(pair):
            sink.append(statistics.median(block(fn, args.calls)) / 1e6)
    h.flush()
    calls = args.calls * args.reps
    result = {
        "impl": args.impl,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "versions": _versions((*packages, *CORE)),
        "calls_per_block": args.calls,
        "reps": args.reps,
        "exporter": args.exporter,
        "baseline_ms": baseline_ms,
        "instrumented_ms": instrumented_ms,
        "overhead_us": [(i - b) * 1e3 for b, i in zip(baseline_ms, instrumented_ms, strict=True)],
        "spans_per_call": (h.spans.count - before) / calls,
        "logs_per_call": ((h.logs.count - logs_before) / calls) if h.logs is not None else 0.0,
        "span": _span_summary(h.spans.sample),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
