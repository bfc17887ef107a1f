"""`watchkeeper query`: through the running agent's API when one owns the store, else by
opening the store directly."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

from watchkeeper.agent.config import Settings
from watchkeeper.agent.runtime import owner_api


class QueryError(Exception):
    pass


def run_query(settings: Settings, sql: str, *, api: str | None = None,
              token: str | None = None) -> tuple[list[str], list[list[Any]]]:
    api = api or (None if settings.store.url else owner_api(settings.data_dir))
    if api:
        token = token or os.environ.get("WATCHKEEPER_API__TOKEN") or (
            settings.api.token.get_secret_value() if settings.api.token else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(f"{api.rstrip('/')}/api/query", json={"sql": sql},
                              headers=headers, timeout=60)
        body = response.json()
        if response.status_code != 200:
            raise QueryError(body.get("error", response.text))
        return body["columns"], body["rows"]
    from watchkeeper.agent.store.client import Store

    if not settings.store.url and not (settings.data_dir / "clickhouse").exists():
        raise QueryError(f"no store under {settings.data_dir}: run `watchkeeper up` first")
    store = Store(settings.store_url, settings.store)
    try:
        result = store.query_readonly(sql, max_rows=settings.api.max_rows)
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
