"""`watchkeeper dashboards export|check|report|push`: the dashboards as provisioning files,
checked against the store, rendered to a static HTML report, or pushed to a Grafana.

Each action takes a typed request (the CLI, agent/cli.py, builds it from its flags)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watchkeeper.agent.config import Settings
from watchkeeper.dashboards.expand import TimeRange

TOKEN_ENV = "GRAFANA_TOKEN"


@dataclass(frozen=True)
class ExportRequest:
    """Dashboard JSON and Grafana provisioning files under `out`."""

    out: Path
    dashboards_only: bool = False  # only dashboards/*.json (what the Helm chart ships)
    clickhouse_url: str | None = None  # the server Grafana reads (default: store.url)


@dataclass(frozen=True)
class PushRequest:
    """Create or update the dashboards in the Grafana at `grafana_url`."""

    grafana_url: str
    token_file: Path | None = None  # a service-account token (default: env GRAFANA_TOKEN)


@dataclass(frozen=True)
class CheckRequest:
    """Run every panel's SQL against the store over the last `hours`."""

    hours: float = 24
    api: str | None = None  # a running agent's API (default: the store's owner, if one runs)
    token: str | None = None


@dataclass(frozen=True)
class ReportRequest:
    """The dashboards over what the last `hours` hold, rendered to one static HTML file."""

    out: Path = Path("watchkeeper-report.html")
    hours: float = 24
    api: str | None = None
    token: str | None = None


DashboardsRequest = ExportRequest | PushRequest | CheckRequest | ReportRequest


def run(request: DashboardsRequest, settings: Settings) -> int:
    if isinstance(request, ExportRequest):
        return export_files(request, settings)
    if isinstance(request, PushRequest):
        return push(request, settings)
    if isinstance(request, ReportRequest):
        return report(request, settings)
    return check_panels(request, settings)


def export_files(request: ExportRequest, settings: Settings) -> int:
    from watchkeeper.dashboards.provisioning import export

    url = request.clickhouse_url or settings.store.url or "http://clickhouse:8123"
    for path in export(request.out, database=settings.store.database, clickhouse_url=url,
                       username=settings.store.username,
                       dashboards_only=request.dashboards_only, alerts=settings.alerts):
        print(path)
    return 0


def push(request: PushRequest, settings: Settings) -> int:
    from watchkeeper.dashboards.publish import publish

    token = (request.token_file.read_text().strip() if request.token_file
             else os.environ.get(TOKEN_ENV, ""))
    if not token:
        raise SystemExit(f"a Grafana token is needed: --token-file or env {TOKEN_ENV}")
    for answer in publish(request.grafana_url, token, settings.store.database):
        print(json.dumps({k: answer.get(k) for k in ("uid", "url", "version", "status")}))
    return 0


def report(request: ReportRequest, settings: Settings) -> int:
    from rich.console import Console

    from watchkeeper.dashboards.report import render

    console = Console(width=160)
    with console.status("rendering") as status:
        page = render(settings.store.database, _sql_runner(request, settings),
                      timedelta(hours=request.hours),
                      progress=lambda title: status.update(f"rendering {title}"))
    request.out.write_text(page)
    console.print(f"wrote {request.out}")
    return 0


def check_panels(request: CheckRequest, settings: Settings) -> int:
    """Prints a row per panel; 1 when any panel's SQL failed."""
    from rich.console import Console
    from rich.table import Table

    from watchkeeper.dashboards.check import check

    results = check(settings.store.database, _sql_runner(request, settings),
                    _time_range(request.hours))
    table = Table("dashboard", "panel", "rows", "error")
    for r in results:
        table.add_row(r.dashboard, r.panel, str(r.rows), r.error)
    Console(width=160).print(table)
    return 1 if any(r.error for r in results) else 0


def _time_range(hours: float) -> TimeRange:
    now = datetime.now(UTC)
    return TimeRange(now - timedelta(hours=hours), now,
                     interval_s=max(60, int(hours * 3600 / 120)))


def _sql_runner(request: CheckRequest | ReportRequest, settings: Settings
                ) -> Callable[[str], tuple[list[str], list[list[object]]]]:
    """A panel's SQL, run read-only over the store (through the owner's API when one runs)."""
    from watchkeeper.agent.query import run_query

    def run_sql(sql: str) -> tuple[list[str], list[list[object]]]:
        return run_query(settings, sql, api=request.api, token=request.token)

    return run_sql
