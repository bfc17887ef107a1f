"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import KafkaBroker, RunningAgent, running_agent


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
