"""Test helpers: a real agent (sidecar + ingest + API) on ephemeral ports, and OTLP posting."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

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
def running_agent(data_dir: Path, **overrides: Any) -> Iterator[RunningAgent]:
    defaults = {"sidecar.otlp_http_port": 0, "sidecar.otlp_grpc_port": 0, "api.port": 0,
                "ingest.join_window_s": 0.3, "ingest.flush_interval_s": 0.1,
                "data_dir": str(data_dir)}
    settings = load_settings(None, **{**defaults, **overrides})
    runtime = Runtime(settings)
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
