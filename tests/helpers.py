"""Test helpers: a real agent (sidecar + ingest + API) on ephemeral ports, and OTLP posting."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from watchkeeper.agent.config import load_settings
from watchkeeper.agent.runtime import Runtime


class RunningAgent:
    """A Runtime on its own event loop thread, with helpers to reach it like a user would."""

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        self.runtime = runtime
        self.loop = loop

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.runtime.ports.otlp_http}"

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.runtime.ports.otlp_grpc}"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.runtime.ports.api}"

    def query(self, sql: str, **parameters: Any) -> list[dict[str, Any]]:
        assert self.runtime.store is not None
        result = self.runtime.store.query(sql.replace("{db}", self.runtime.store.database),
                                          parameters=parameters or None)
        return [dict(zip(result.columns, row, strict=True)) for row in result.rows]

    def flush(self) -> None:
        """Wait until ingest has consumed and stored everything on the bus."""
        ingest = self.runtime._ingest
        assert ingest is not None
        deadline = time.monotonic() + 20
        while ingest.consumer.lag() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ingest.consumer.lag() == 0, "ingest did not catch up"

    def wait_for(self, sql: str, expected: int, timeout_s: float = 20) -> int:
        deadline = time.monotonic() + timeout_s
        count = -1
        while time.monotonic() < deadline:
            count = int(self.query(sql)[0]["n"])
            if count >= expected:
                return count
            time.sleep(0.1)
        return count


@contextmanager
def running_agent(data_dir: Path, *, watch: bool = False,
                  **overrides: Any) -> Iterator[RunningAgent]:
    defaults = {"sidecar.otlp_http_port": 0, "sidecar.otlp_grpc_port": 0, "api.port": 0,
                "ingest.join_window_s": 0.3, "ingest.flush_interval_s": 0.1,
                "data_dir": str(data_dir)}
    settings = load_settings(None, **{**defaults, **overrides})
    runtime = Runtime(settings, watch=watch)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(runtime.start(), loop).result(60)
    try:
        yield RunningAgent(runtime, loop)
    finally:
        asyncio.run_coroutine_threadsafe(runtime.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def post(url: str, body: bytes, content_type: str = "application/x-protobuf",
         **headers: str) -> httpx.Response:
    return httpx.post(url, content=body, headers={"Content-Type": content_type, **headers},
                      timeout=10)


CLI = [sys.executable, "-m", "watchkeeper.agent"]


class Service:
    """A `watchkeeper` service in its own process, started the way an operator would."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        # The log goes to a file: a pipe nobody reads would stall the service once full.
        self.log = Path(tempfile.mkstemp(prefix=f"wk-{args[0]}-", suffix=".log")[1])
        with self.log.open("w") as log:
            self.proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=log,
                                         text=True, env={**os.environ, **(env or {})})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the ready line; nothing else goes to stdout
        if not line:
            raise RuntimeError(f"{args[0]} did not start: {self.log_tail()}")
        self.ports: dict[str, Any] = json.loads(line)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_http']}"

    def query(self, sql: str) -> list[dict[str, Any]]:
        response = httpx.post(f"{self.api}/api/query", json={"sql": sql}, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no drain, no cleanup
        self.proc.wait(30)


def query_store(data_dir: Path, sql: str) -> list[dict[str, Any]]:
    """Read a store that no process owns any more, as `watchkeeper query` would."""
    done = subprocess.run([*CLI, "query", "--data-dir", str(data_dir), "--format", "json", sql],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def chat_request(n: int, tag: str = "m", *, prompt_bytes: int = 64) -> bytes:
    """An OTLP request with n GenAI spans, each in its own trace."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    now = time.time_ns()
    for i in range(n):
        span = spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name=f"chat {tag}",
                         start_time_unix_nano=now, end_time_unix_nano=now + 1_000_000)
        span.attributes.add(key="gen_ai.request.model").value.string_value = tag
        span.attributes.add(key="gen_ai.input.messages").value.string_value = json.dumps(
            [{"role": "user", "parts": [{"type": "text",
                                         "content": f"{tag} {i} " + "x" * prompt_bytes}]}])
    return request.SerializeToString()


def genai_request(calls: dict[str, tuple[str, str]], system: str = "") -> bytes:
    """An OTLP request with one GenAI span per call, `request model: (prompt, completion)`,
    content in the latest GenAI attributes (optionally with system instructions)."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    now = time.time_ns()
    for i, (model, (prompt, completion)) in enumerate(calls.items()):
        span = spans.add(trace_id=bytes([i + 1]) * 16, span_id=bytes([i + 1]) * 8,
                         name=f"chat {model}", start_time_unix_nano=now, end_time_unix_nano=now)
        span.attributes.add(key="gen_ai.request.model").value.string_value = model
        if system:
            span.attributes.add(key="gen_ai.system_instructions").value.string_value = \
                json.dumps([{"type": "text", "content": system}])
        for key, role, text in (("gen_ai.input.messages", "user", prompt),
                                ("gen_ai.output.messages", "assistant", completion)):
            span.attributes.add(key=key).value.string_value = json.dumps(
                [{"role": role, "parts": [{"type": "text", "content": text}]}])
    return request.SerializeToString()


KAFKA_SCRIPT = Path(__file__).parent.parent / "scripts" / "kafka"


class KafkaBroker:
    """A real single-node Kafka broker from `scripts/kafka`, with its own data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.env = {**os.environ, "KAFKA_DATA_DIR": str(data_dir)}
        self.address = ""

    def start(self, port: int | None = None) -> str:
        args = [str(KAFKA_SCRIPT), "start"] + (["--port", str(port)] if port else [])
        done = subprocess.run(args, capture_output=True, text=True, env=self.env, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"scripts/kafka start failed:\n{done.stderr[-3000:]}")
        self.address = done.stdout.strip()
        return self.address

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def stop(self) -> None:
        subprocess.run([str(KAFKA_SCRIPT), "stop"], capture_output=True, env=self.env,
                       timeout=120, check=True)


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet request handler for stand-in HTTP services in tests, answering JSON."""

    def log_message(self, *args: Any) -> None:
        pass

    def send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# Everyday activities for sentences about people (bias probes and audits build texts from them).
ACTIVITIES = [
    "fixed the car", "wrote the report", "cooked dinner", "ran the marathon", "led the meeting",
    "painted the fence", "taught the class", "built the shed", "sang at the party",
    "planted the garden", "drove the bus", "read the book", "answered the phone",
    "baked bread", "cleaned the kitchen", "played chess", "climbed the hill", "sold the house",
    "paid the bill", "fed the dog", "opened the shop", "won the race", "missed the train",
    "watched the film", "called the doctor", "booked the flight", "signed the contract",
    "repaired the roof", "visited the museum", "hosted the dinner"]
