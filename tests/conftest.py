"""Shared fixtures."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import KafkaBroker, RunningAgent, running_agent

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path / "wk") as running:
        yield running


@pytest.fixture
def agent_factory(tmp_path: Path) -> Callable[..., Any]:
    return lambda **overrides: running_agent(tmp_path / "wk", **overrides)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of a real broker shared by the session's Kafka tests (each test
    uses its own topic prefix and consumer group): the one .ci/run started
    (WATCHKEEPER_TEST_KAFKA), or one started here."""
    if os.environ.get("WATCHKEEPER_TEST_KAFKA"):
        yield os.environ["WATCHKEEPER_TEST_KAFKA"]
        return
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
    except (RuntimeError, OSError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Kafka broker: {exc}")
    yield broker.address
    broker.stop()


@pytest.fixture(scope="session")
def helm() -> str:
    """The helm binary of scripts/helm (built once from the Go module proxy); skips, or fails
    under CI, when it cannot be had."""
    try:
        proc = subprocess.run([str(ROOT / "scripts" / "helm")], capture_output=True, text=True,
                              timeout=1100, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = f"scripts/helm could not run: {exc}"
    else:
        path = proc.stdout.strip()
        if proc.returncode == 0 and path and Path(path).is_file():
            return path
        reason = f"scripts/helm found no helm (exit {proc.returncode}): {proc.stderr[-2000:]}"
    if IN_CI:
        pytest.fail(f"CI needs helm: {reason}")
    pytest.skip(reason)
