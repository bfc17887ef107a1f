"""The dashboards as one static HTML file: the same panels and SQL as in Grafana, run once and
drawn by the live view's renderer (uPlot, embedded). For sharing a snapshot: the file needs no
server and no network."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from watchkeeper.dashboards import page
from watchkeeper.dashboards.check import Run
from watchkeeper.dashboards.snapshot import fitted_range, snapshot


def render(database: str, run: Run, lookback: timedelta,
           progress: Callable[[str], None] | None = None) -> str:
    """Every board over the span the last `lookback` of samples covers (fitted, so a short
    demo fills the charts)."""
    window = fitted_range(run, database, lookback, datetime.now(UTC))
    return page.report(snapshot(database, run, window, progress))
