"""A small OpenAI-compatible chat server: the model behind `watchkeeper demo`, the tests and
the benchmarks.

Standard library only, so that it also runs inside the throwaway virtual environments that
capture fixtures from other instrumentation libraries (`python llm_server.py --port N`).

Requests may steer the answer through extra body fields (the openai client's `extra_body`):
`fake_reply` (the completion text), `fake_error` (an HTTP status to fail with) and
`fake_delay_ms`. Without them the reply is derived from the last user message.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CANNED = {
    "capital of france": "Paris is the capital of France.",
    "weather": "I cannot see live weather, but you can check a local forecast service.",
    "refund": "I have started your refund; it should arrive in 3-5 business days.",
}


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _reply_for(body: dict[str, Any]) -> str:
    if isinstance(body.get("fake_reply"), str):
        return str(body["fake_reply"])
    messages = body.get("messages") or []
    last = ""
    for message in messages:
        if message.get("role") == "user":
            content = message.get("content")
            last = content if isinstance(content, str) else json.dumps(content)
    lowered = last.lower()
    for key, answer in CANNED.items():
        if key in lowered:
            return answer
    return f"Here is a short answer about: {last[:80]}"


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or []:
        content = message.get("content")
        total += _tokens(content if isinstance(content, str) else json.dumps(content)) + 4
    return total


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "watchkeeper-llm/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the server runs inside tests and the demo."""

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as exc:
            self._send_json(400, {"error": {"message": f"invalid JSON: {exc}"}})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        if body.get("fake_delay_ms"):
            time.sleep(float(body["fake_delay_ms"]) / 1000)
        if body.get("fake_error"):
            status = int(body["fake_error"])
            self._send_json(status, {"error": {"message": "fake upstream failure",
                                               "type": "server_error", "code": str(status)}})
            return
        model = str(body.get("model") or "fake-model")
        reply = _reply_for(body)
        usage = {
            "prompt_tokens": _prompt_tokens(body),
            "completion_tokens": _tokens(reply),
            "total_tokens": _prompt_tokens(body) + _tokens(reply),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        created = int(time.time())
        response_model = f"{model}-2024-07-18" if model.startswith("gpt-") else model
        if body.get("stream"):
            self._stream(body, reply, response_model, created, usage)
            return
        self._send_json(200, {
            "id": "chatcmpl-fake123",
            "object": "chat.completion",
            "created": created,
            "model": response_model,
            "system_fingerprint": "fp_fake",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": reply, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }],
            "usage": usage,
        })

    def _stream(self, body: dict[str, Any], reply: str, model: str, created: int,
                usage: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()

        def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> None:
            payload = {"id": "chatcmpl-fakeSTREAM123", "object": "chat.completion.chunk",
                       "created": created, "model": model, "system_fingerprint": "fp_fake",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                    "logprobs": None}], **extra}
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())

        chunk({"role": "assistant", "content": ""}, None)
        words = reply.split(" ")
        for i, word in enumerate(words):
            chunk({"content": word + (" " if i < len(words) - 1 else "")}, None)
        chunk({}, "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            final = {"id": "chatcmpl-fakeSTREAM123", "object": "chat.completion.chunk",
                     "created": created, "model": model, "choices": [], "usage": usage}
            self.wfile.write(f"data: {json.dumps(final)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class LLMServer:
    """The server on a background thread; `with LLMServer() as s: s.base_url`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> LLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), _Handler)
    print(f"listening on http://{args.host}:{args.port}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
