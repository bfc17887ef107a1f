"""One simulated application of `watchkeeper demo`, run as its own process (its own service
name and OpenTelemetry resource, as a real app would have). Prints one JSON line per call."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from opentelemetry import trace

from watchkeeper.agent.demo.script import (
    SEARCH_QUERIES,
    SUMMARIES,
    SUPPORT_CHATS,
    SYSTEM_SEARCH,
    SYSTEM_SUPPORT,
    Turn,
)
from watchkeeper.collectors import conversation, feedback, instrument, llm_call


def _report(service: str, model: str, turn: Turn, outcome: str, **extra: Any) -> None:
    print(json.dumps({"service": service, "model": model, "prompt": turn.prompt[:60],
                      "stream": turn.stream, "outcome": outcome, "thumbs": turn.thumbs,
                      **extra}), flush=True)


def _extra(turn: Turn) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if turn.reply is not None:
        body["fake_reply"] = turn.reply
    if turn.error:
        body["fake_error"] = turn.error
    return body


def support_bot(llm: str) -> None:
    """Multi-turn chats through the sync openai client, with conversation ids and feedback."""
    import openai

    client: Any = openai.OpenAI(base_url=llm, api_key="demo", max_retries=0)
    tracer = trace.get_tracer("support-bot")
    for index, chat in enumerate(SUPPORT_CHATS):
        history: list[dict[str, str]] = [{"role": "system", "content": SYSTEM_SUPPORT}]
        with conversation(f"conv-{uuid.uuid4().hex[:8]}", user_id=f"customer-{index}"):
            for turn in chat:
                history.append({"role": "user", "content": turn.prompt})
                with tracer.start_as_current_span("POST /chat") as request:
                    if turn.stream:
                        chunks = client.chat.completions.create(
                            model="gpt-4o-mini", messages=history, stream=True,
                            stream_options={"include_usage": True}, extra_body=_extra(turn))
                        answer = "".join(c.choices[0].delta.content or ""
                                         for c in chunks if c.choices)
                    else:
                        response = client.chat.completions.create(
                            model="gpt-4o-mini", messages=history,
                            extra_body=_extra(turn))
                        answer = response.choices[0].message.content or ""
                    history.append({"role": "assistant", "content": answer})
                    if turn.thumbs:
                        feedback(call=request, thumbs=turn.thumbs)
                _report("support-bot", "gpt-4o-mini", turn, "ok")


async def search_assistant(llm: str) -> None:
    """Async and async-streaming calls, some of which fail upstream."""
    import openai

    client: Any = openai.AsyncOpenAI(base_url=llm, api_key="demo", max_retries=0)
    for turn in SEARCH_QUERIES:
        messages = [{"role": "system", "content": SYSTEM_SEARCH},
                    {"role": "user", "content": turn.prompt}]
        try:
            if turn.stream:
                stream = await client.chat.completions.create(
                    model="gpt-4.1-mini", messages=messages, stream=True,
                    extra_body=_extra(turn))
                async for _ in stream:
                    pass
            else:
                await client.chat.completions.create(
                    model="gpt-4.1-mini", messages=messages,
                    extra_body=_extra(turn))
            _report("search-assistant", "gpt-4.1-mini", turn, "ok")
        except openai.APIStatusError as exc:
            _report("search-assistant", "gpt-4.1-mini", turn, f"error {exc.status_code}")


def summariser() -> None:
    """A self-hosted model (vLLM-style) called without openai: `llm_call` as decorator and
    context manager."""

    @llm_call(model="llama-3.1-8b-instruct", provider="vllm", temperature=0.1)
    def generate(prompt: str, reply: str) -> str:
        time.sleep(0.01)  # the model's work
        return reply

    for turn in SUMMARIES:
        if turn.thumbs:
            with llm_call(model="llama-3.1-8b-instruct", provider="vllm",
                          prompt=turn.prompt) as call:
                call.record(output=turn.reply or "", input_tokens=len(turn.prompt.split()),
                            output_tokens=len((turn.reply or "").split()))
            feedback(call=call, thumbs=turn.thumbs)
        else:
            generate(turn.prompt, turn.reply or "")
        _report("summariser", "llama-3.1-8b-instruct", turn, "ok")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", required=True,
                        choices=("support-bot", "search-assistant", "summariser"))
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--llm", required=True)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--token")
    args = parser.parse_args()
    handle = instrument(args.service, args.endpoint, token=args.token, environment="demo")
    for round_ in range(args.rounds):
        if round_:
            time.sleep(args.interval)
        if args.service == "support-bot":
            support_bot(args.llm)
        elif args.service == "search-assistant":
            asyncio.run(search_assistant(args.llm))
        else:
            summariser()
    handle.shutdown()


if __name__ == "__main__":
    main()
