"""The commands as a user runs them: `up` in its own process, `demo`, `query`, SIGTERM drain."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import CLI, Service, chat_request, post, query_store


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Service]:
    agent = Service("up", "--data-dir", str(tmp_path / "wk"), "--otlp-http-port", "0",
                    "--otlp-grpc-port", "0", "--api-port", "0")
    agent.data_dir = tmp_path / "wk"  # type: ignore[attr-defined]
    yield agent
    if agent.proc.poll() is None:
        agent.proc.kill()
    print("--- up log", agent.log_tail(), sep="\n")  # shown on failure
    agent.log.unlink(missing_ok=True)


def test_up_demo_query_and_clean_stop(up: Service) -> None:
    api = up.api
    assert httpx.get(f"{api}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{api}/readyz").json()["ready"] is True
    demo = subprocess.run([*CLI, "demo", "--endpoint", up.otlp_http],
                          capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    sent = int(demo.stdout.split(" model calls sent")[0].split()[-1])
    assert sent >= 15
    # while `up` owns the store, query goes through its API
    assert up.stop() == 0
    rows = query_store(up.data_dir, "SELECT service, count() AS n, "
                       "countIf(status = 'error') AS errors, sum(redactions) AS redactions "
                       "FROM samples GROUP BY service ORDER BY service")
    assert sum(int(r["n"]) for r in rows) == sent
    assert {r["service"] for r in rows} == {"search-assistant", "summariser", "support-bot"}
    by_service = {r["service"]: r for r in rows}
    assert int(by_service["search-assistant"]["errors"]) == 2
    assert int(by_service["support-bot"]["redactions"]) >= 3
    feedback = query_store(up.data_dir, "SELECT thumbs FROM user_feedback ORDER BY thumbs")
    assert [f["thumbs"] for f in feedback] == ["down", "down", "up", "up"]
    toxic = query_store(up.data_dir, "SELECT conversation_id FROM samples "
                               "WHERE completion_text LIKE '%moron%'")
    assert len(toxic) == 1 and toxic[0]["conversation_id"].startswith("conv-")


def test_query_goes_through_the_owner_api(up: Service) -> None:
    rows = query_store(up.data_dir, "SELECT count() AS n FROM samples")
    assert rows == [{"n": 0}]
    owner = json.loads((up.data_dir / "agent.json").read_text())
    assert owner["pid"] == up.proc.pid
    denied = subprocess.run([*CLI, "query", "--data-dir", str(up.data_dir),
                             "DROP TABLE samples"], capture_output=True, text=True, timeout=60)
    assert denied.returncode == 1 and "only SELECT, DESCRIBE and SHOW TABLES" in denied.stderr
    assert up.stop() == 0
    assert not (up.data_dir / "agent.json").exists()


def test_sigterm_loses_nothing_accepted(up: Service) -> None:
    """Spans accepted right before SIGTERM are still in the join window: the drain stores them."""
    accepted = 0
    for batch in range(20):
        assert post(f"{up.otlp_http}/v1/traces", chat_request(50, f"m{batch}")).is_success
        accepted += 50
    assert up.stop() == 0
    assert query_store(up.data_dir, "SELECT count() AS n FROM samples") == [{"n": accepted}]


def test_migrate_command(tmp_path: Path) -> None:
    first = subprocess.run([*CLI, "migrate", "--data-dir", str(tmp_path)], capture_output=True,
                           text=True, timeout=120)
    second = subprocess.run([*CLI, "migrate", "--data-dir", str(tmp_path)], capture_output=True,
                            text=True, timeout=120)
    assert json.loads(first.stdout)["applied"] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert json.loads(second.stdout)["applied"] == []


def test_each_serving_command_has_its_own_default_api_port(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sidecar, ingest, watch and schedule can run side by side on one host; api.port (file,
    env) or --api-port still wins."""
    from watchkeeper.agent.cli import API_PORTS, api_port
    from watchkeeper.agent.config import load_settings

    alone = ("sidecar", "ingest", "watch", "schedule")
    assert len({API_PORTS[command] for command in alone}) == len(alone)
    assert api_port(load_settings(None), "sidecar") == API_PORTS["sidecar"] == 8687
    assert api_port(load_settings(None), "ingest") == API_PORTS["up"] == 8686
    assert api_port(load_settings(None, **{"api.port": 7001}), "sidecar") == 7001
    config = tmp_path / "wk.yaml"
    config.write_text("api:\n  port: 7002\n")
    assert api_port(load_settings(config), "watch") == 7002
    monkeypatch.setenv("WATCHKEEPER_API__PORT", "7003")
    assert api_port(load_settings(None), "schedule") == 7003


def test_a_taken_port_names_the_flag_and_setting(tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run([*CLI, "schedule", "--data-dir", str(tmp_path), "--api-port",
                               str(port)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "address already in use" in done.stderr
    assert "choose another with --api-port (api.port)" in done.stderr
