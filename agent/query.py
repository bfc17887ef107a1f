"""`watchkeeper query`: through the running agent's API when one owns the store, else by
opening the store directly."""

from __future__ import annotations

import json
from typing import Any

from watchkeeper.agent.access import find_owner, open_store
from watchkeeper.agent.config import Settings
from watchkeeper.agent.store.sandbox import Sandbox


def run_query(settings: Settings, sql: str, *, api: str | None = None,
              token: str | None = None) -> tuple[list[str], list[list[Any]]]:
    owner = find_owner(settings, api, token)
    if owner is not None:
        body = owner.request("POST", "/api/query", json={"sql": sql}, timeout=60)
        return body["columns"], body["rows"]
    store = open_store(settings)
    try:
        sandbox = Sandbox(store, settings.query)
        try:
            result = sandbox.run(sql)
        finally:
            sandbox.close()
    finally:
        store.close()
    return result.columns, [list(r) for r in result.rows]


def show(columns: list[str], rows: list[list[Any]], fmt: str) -> None:
    if fmt == "json":
        for row in rows:
            print(json.dumps(dict(zip(columns, row, strict=True)), default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console(width=max(120, min(240, 24 * len(columns)))).print(table)
