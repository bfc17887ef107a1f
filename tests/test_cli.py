"""The commands as a user runs them: `up` in its own process, `demo`, `query`, SIGTERM drain."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from helpers import post

CLI = [sys.executable, "-m", "watchkeeper.agent"]


class Agent:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [*CLI, "up", "--data-dir", str(data_dir), "--otlp-http-port", "0",
             "--otlp-grpc-port", "0", "--api-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else "no output"
        self.ports: dict[str, Any] = json.loads(line)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Agent]:
    agent = Agent(tmp_path / "wk")
    yield agent
    if agent.proc.poll() is None:
        agent.proc.kill()


def query(data_dir: Path, sql: str) -> list[dict[str, Any]]:
    done = subprocess.run([*CLI, "query", "--data-dir", str(data_dir), "--format", "json", sql],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_up_demo_query_and_clean_stop(up: Agent) -> None:
    api = f"http://127.0.0.1:{up.ports['api']}"
    assert httpx.get(f"{api}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{api}/readyz").json()["ready"] is True
    demo = subprocess.run([*CLI, "demo", "--endpoint",
                           f"http://127.0.0.1:{up.ports['otlp_http']}"],
                          capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    sent = int(demo.stdout.split(" model calls sent")[0].split()[-1])
    assert sent >= 15
    # while `up` owns the store, query goes through its API
    assert up.stop() == 0
    rows = query(up.data_dir, "SELECT service, count() AS n, countIf(status = 'error') AS errors, "
                              "sum(redactions) AS redactions FROM samples GROUP BY service "
                              "ORDER BY service")
    assert sum(int(r["n"]) for r in rows) == sent
    assert {r["service"] for r in rows} == {"search-assistant", "summariser", "support-bot"}
    by_service = {r["service"]: r for r in rows}
    assert int(by_service["search-assistant"]["errors"]) == 2
    assert int(by_service["support-bot"]["redactions"]) >= 3
    feedback = query(up.data_dir, "SELECT thumbs FROM user_feedback ORDER BY thumbs")
    assert [f["thumbs"] for f in feedback] == ["down", "down", "up", "up"]
    toxic = query(up.data_dir, "SELECT conversation_id FROM samples "
                               "WHERE completion_text LIKE '%moron%'")
    assert len(toxic) == 1 and toxic[0]["conversation_id"].startswith("conv-")


def test_query_goes_through_the_owner_api(up: Agent) -> None:
    rows = query(up.data_dir, "SELECT count() AS n FROM samples")
    assert rows == [{"n": 0}]
    owner = json.loads((up.data_dir / "agent.json").read_text())
    assert owner["pid"] == up.proc.pid
    denied = subprocess.run([*CLI, "query", "--data-dir", str(up.data_dir), "DROP TABLE samples"],
                            capture_output=True, text=True, timeout=60)
    assert denied.returncode == 1 and "only a single SELECT" in denied.stderr
    assert up.stop() == 0
    assert not (up.data_dir / "agent.json").exists()


def test_sigterm_loses_nothing_accepted(up: Agent) -> None:
    """Spans accepted right before SIGTERM are still in the join window: the drain stores them."""
    url = f"http://127.0.0.1:{up.ports['otlp_http']}/v1/traces"
    accepted = 0
    for batch in range(20):
        request = ExportTraceServiceRequest()
        spans = request.resource_spans.add().scope_spans.add().spans
        for i in range(50):
            span = spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name="chat m")
            span.attributes.add(key="gen_ai.request.model").value.string_value = f"m{batch}-{i}"
        assert post(url, request.SerializeToString()).status_code == 200
        accepted += 50
    assert up.stop() == 0
    assert query(up.data_dir, "SELECT count() AS n FROM samples") == [{"n": accepted}]


def test_migrate_command(tmp_path: Path) -> None:
    first = subprocess.run([*CLI, "migrate", "--data-dir", str(tmp_path)], capture_output=True,
                           text=True, timeout=120)
    second = subprocess.run([*CLI, "migrate", "--data-dir", str(tmp_path)], capture_output=True,
                            text=True, timeout=120)
    assert json.loads(first.stdout)["applied"] == [1]
    assert json.loads(second.stdout)["applied"] == []
