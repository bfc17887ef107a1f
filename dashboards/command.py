"""`watchkeeper dashboards export|check|report|push`: the dashboards as provisioning files,
checked against the store, rendered to a static HTML report, or pushed to a Grafana."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watchkeeper.agent.config import Settings

TOKEN_ENV = "GRAFANA_TOKEN"


def _reads_store(command: argparse.ArgumentParser) -> None:
    from watchkeeper.agent.cli import reaches_store

    reaches_store(command)
    command.add_argument("--hours", type=float, default=24, help="time range, ending now")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    out = actions.add_parser("export", help="dashboard JSON + Grafana provisioning files")
    out.add_argument("--out", type=Path, required=True)
    out.add_argument("--dashboards-only", action="store_true",
                     help="only dashboards/*.json (what the Helm chart ships)")
    out.add_argument("--clickhouse-url", help="the server Grafana reads (default: store.url, "
                                              "else http://clickhouse:8123)")
    _reads_store(actions.add_parser("check", help="run every panel's SQL against the store"))
    report = actions.add_parser("report", help="the dashboards as one static HTML file")
    _reads_store(report)
    report.add_argument("--out", type=Path, default=Path("watchkeeper-report.html"))
    push = actions.add_parser("push", help="create or update the dashboards in a Grafana")
    push.add_argument("--grafana-url", required=True)
    push.add_argument("--token-file", type=Path,
                      help=f"a Grafana service-account token (default: env {TOKEN_ENV})")


def run(args: argparse.Namespace, settings: Settings) -> int:
    database = settings.store.database
    if args.action == "export":
        from watchkeeper.dashboards.provisioning import export

        url = args.clickhouse_url or settings.store.url or "http://clickhouse:8123"
        for path in export(args.out, database=database, clickhouse_url=url,
                           username=settings.store.username,
                           dashboards_only=args.dashboards_only):
            print(path)
        return 0
    if args.action == "push":
        from watchkeeper.dashboards.publish import publish

        token = (args.token_file.read_text().strip() if args.token_file
                 else os.environ.get(TOKEN_ENV, ""))
        if not token:
            raise SystemExit(f"a Grafana token is needed: --token-file or env {TOKEN_ENV}")
        for answer in publish(args.grafana_url, token, database):
            print(json.dumps({k: answer.get(k) for k in ("uid", "url", "version", "status")}))
        return 0
    return _over_store(args, settings)


def _over_store(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console

    from watchkeeper.agent.query import run_query
    from watchkeeper.dashboards.expand import TimeRange

    now = datetime.now(UTC)
    span = TimeRange(now - timedelta(hours=args.hours), now,
                     interval_s=max(60, int(args.hours * 3600 / 120)))

    def run_sql(sql: str) -> tuple[list[str], list[list[object]]]:
        return run_query(settings, sql, api=args.api, token=args.token)

    console = Console(width=160)
    if args.action == "report":
        from watchkeeper.dashboards.report import render

        with console.status("rendering") as status:
            page = render(settings.store.database, run_sql, span,
                          progress=lambda title: status.update(f"rendering {title}"))
        args.out.write_text(page)
        console.print(f"wrote {args.out}")
        return 0
    from rich.table import Table

    from watchkeeper.dashboards.check import check

    results = check(settings.store.database, run_sql, span)
    table = Table("dashboard", "panel", "rows", "error")
    for r in results:
        table.add_row(r.dashboard, r.panel, str(r.rows), r.error)
    console.print(table)
    return 1 if any(r.error for r in results) else 0
