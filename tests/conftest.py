"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import RunningAgent, running_agent


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path / "wk") as running:
        yield running


@pytest.fixture
def agent_factory(tmp_path: Path) -> Callable[..., Any]:
    return lambda **overrides: running_agent(tmp_path / "wk", **overrides)
