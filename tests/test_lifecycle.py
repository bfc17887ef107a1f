"""One lifecycle for every service: the runtime starts the API, schedule, watch, ingest and the
sidecar through the same contract, drains them in reverse order, and a drain keeps its
deadline even when a service does not."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from helpers import chat_request, post, running_agent
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
