"""One lifecycle for every service: the runtime starts the API, schedule, watch, ingest and the
sidecar through the same contract, drains them in reverse order, and a drain keeps its
deadline even when a service does not."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from helpers import chat_request, post, running_agent
from watchkeeper.agent.api import app
from watchkeeper.agent.auth import TokenCheck
from watchkeeper.agent.lifecycle import LoopService, Service


def test_every_service_follows_the_contract(tmp_path: Path) -> None:
    with running_agent(tmp_path / "wk", watch=True) as agent:
        runtime = agent.runtime
        names = [s.name for s in runtime.services]
        assert names == ["api", "watch", "ingest", "sidecar"]
        assert all(isinstance(s, Service) for s in runtime.services)
        checks = runtime.readiness()
        assert checks["watch"] is True and checks["ingest"] is True and checks["sidecar"]
        assert post(f"{agent.http_endpoint}/v1/traces", chat_request(3, "l")).is_success
        assert agent.wait_for("SELECT count() AS n FROM {db}.samples", 3) == 3


def test_drain_goes_in_reverse_order_of_start(tmp_path: Path) -> None:
    drained: list[str] = []
    with running_agent(tmp_path / "wk") as agent:
        for service in agent.runtime.services:
            original = service.drain

            async def record(deadline: float, name: str = service.name,
                             inner: object = original) -> None:
                drained.append(name)
                await inner(deadline)  # type: ignore[operator]

            service.drain = record  # type: ignore[method-assign]
    assert drained == ["sidecar", "ingest", "api"]


class Stubborn(LoopService):
    """A loop that ignores its stop signal for longer than any deadline."""

    name = "stubborn"

    def run(self, stop: threading.Event) -> None:
        time.sleep(3.0)


def test_a_drain_keeps_its_deadline() -> None:
    """A loop still busy at the deadline is left running (what it holds stays on the bus) and
    the drain returns, so the process can exit within its grace period."""
    async def scenario() -> tuple[float, dict[str, bool]]:
        service = Stubborn()
        await service.start()
        assert service.ready() == {"stubborn": True}
        started = time.monotonic()
        await service.drain(time.monotonic() + 0.3)
        return time.monotonic() - started, service.ready()

    took, after = asyncio.run(scenario())
    assert took < 1.5
    assert after == {"stubborn": True}  # still running: the drain did not wait for it


# A sidecar-only process in a fresh interpreter: what it imports, and what its API answers.
SIDECAR_ONLY = r"""
import asyncio, json, sys, tempfile, urllib.error, urllib.request
from pathlib import Path
from watchkeeper.agent.config import ApiConfig, Settings, SidecarConfig
from watchkeeper.agent.runtime import Runtime

def get(url):
    try:
        with urllib.request.urlopen(url) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())

async def main():
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime(Settings(data_dir=Path(tmp), bus="embedded://",
                                   sidecar=SidecarConfig(otlp_http_port=0, otlp_grpc_port=0),
                                   api=ApiConfig(port=0)), ingest=False)
        await runtime.start()
        api = f"http://127.0.0.1:{runtime.ports.api}"
        answers = {path: await asyncio.to_thread(get, api + path)
                   for path in ("/readyz", "/api/flags", "/ui/")}
        await runtime.stop()
    print(json.dumps({"modules": sorted(sys.modules), "answers": answers}))

asyncio.run(main())
"""


def test_a_sidecar_loads_nothing_of_the_store() -> None:
    """The sidecar runs in every application pod: its process imports none of the store's
    client, the dashboards, the review queue or the services that need a store (about 25 MB
    of resident memory, docs/benchmarks.md §2), and its API says that the store's routes
    are elsewhere."""
    done = subprocess.run([sys.executable, "-c", SIDECAR_ONLY], capture_output=True,
                          text=True, timeout=120, check=True)
    report = json.loads(done.stdout.splitlines()[-1])
    loaded = set(report["modules"])
    for module in ("clickhouse_connect", "chdb", "grafana_foundation_sdk", "httpx",
                   "watchkeeper.agent.store.client", "watchkeeper.agent.store_api",
                   "watchkeeper.agent.ingest.service", "watchkeeper.agent.watch.service",
                   "watchkeeper.agent.review.queue", "watchkeeper.dashboards.web"):
        assert module not in loaded, f"a sidecar process imported {module}"
    assert "watchkeeper.agent.sidecar.service" in loaded  # the check can see imports at all
    ready_status, ready = report["answers"]["/readyz"]
    assert ready_status == 200 and ready["ready"] is True
    for path in ("/api/flags", "/ui/"):
        status, body = report["answers"][path]
        assert (status, body) == (404, {"error": "this process does not own a store"}), path


def test_a_store_less_api_asks_for_the_token_before_saying_where_the_store_is() -> None:
    """docs/security.md: with a token set, a sidecar's API answers every /api/* and /ui path
    with 401 until the token comes, then 404; the probes stay open."""
    async def scenario() -> list[tuple[str, int]]:
        application = app(lambda: {"bus": True}, TokenCheck(SecretStr("s3cret")))
        answers = []
        async with TestClient(TestServer(application)) as client:
            for path, headers in (("/healthz", {}), ("/readyz", {}), ("/api/flags", {}),
                                  ("/ui/login", {}), ("/ui/static/app.js", {}),
                                  ("/api/flags", {"Authorization": "Bearer s3cret"}),
                                  ("/ui/", {"Authorization": "Bearer s3cret"})):
                response = await client.get(path, headers=headers)
                answers.append((path, response.status))
        return answers

    assert asyncio.run(scenario()) == [
        ("/healthz", 200), ("/readyz", 200), ("/api/flags", 401), ("/ui/login", 401),
        ("/ui/static/app.js", 401), ("/api/flags", 404), ("/ui/", 404)]
