"""Runs every panel query of every dashboard against a store, with the dashboard variables set
to every value they find (Grafana's "All"): a dashboard whose SQL no longer fits the schema
fails here, before anyone opens Grafana."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchkeeper.dashboards.definitions import build_all
from watchkeeper.dashboards.expand import TimeRange, expand

Run = Callable[[str], tuple[list[str], list[list[Any]]]]


@dataclass(frozen=True, slots=True)
class PanelCheck:
    dashboard: str
    panel: str
    rows: int
    error: str = ""


def variable_values(board: dict[str, Any], run: Run, time_range: TimeRange
                     ) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for variable in board.get("templating", {}).get("list", []):
        _, rows = run(expand(str(variable["query"]), time_range, values))
        values[variable["name"]] = [str(row[0]) for row in rows]
    return values


def check(database: str, run: Run, time_range: TimeRange) -> list[PanelCheck]:
    results = []
    for name, board in build_all(database).items():
        values = variable_values(board, run, time_range)
        for panel in board.get("panels", []):
            for target in panel.get("targets", []):
                sql = expand(target["rawSql"], time_range, values)
                try:
                    _, rows = run(sql)
                except Exception as exc:  # reported per panel: one bad query hides no other
                    results.append(PanelCheck(name, panel["title"], 0, str(exc)[:500]))
                else:
                    results.append(PanelCheck(name, panel["title"], len(rows)))
    return results
