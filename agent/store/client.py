"""The store: ClickHouse through clickhouse-connect, always. `chdb:///path` opens the in-process
engine (embedded default, one owner per process); `http(s)://` reaches a server. Same SQL, same
client API, same schema. This handle is Watchkeeper's own (capture, watchers, detectors); SQL a
person wrote runs in sandbox.py's read-only sessions instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from watchkeeper.agent.config import StoreConfig
from watchkeeper.agent.store.tables import Table

Row = TypeVar("Row")

# How ClickHouse reads JSON rows (Store.insert_json): ISO 8601 timestamps as pydantic writes
# them, and JSON arrays in String columns (a sample's message lists) kept as their JSON text.
JSON_INPUT_SETTINGS = {"date_time_input_format": "best_effort",
                       "input_format_json_read_arrays_as_strings": 1}


@dataclass(frozen=True, slots=True)
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False  # more rows matched than the result limit lets through

    def records(self) -> list[dict[str, Any]]:
        """The rows as {column: value}: readers go by name, never by position."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def connect(url: str, config: StoreConfig) -> Client:
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        return clickhouse_connect.get_client(dsn=url)
    password = config.password.get_secret_value() if config.password else ""
    return clickhouse_connect.get_client(
        host=parts.hostname or "localhost",
        port=parts.port or (8443 if parts.scheme == "https" else 8123),
        secure=parts.scheme == "https",
        verify=config.verify_tls,
        ca_cert=str(config.ca_cert) if config.ca_cert else None,
        # userinfo in a URL is percent-encoded (a password may hold ':', '@', '/', '%')
        username=unquote(parts.username or "") or config.username,
        password=unquote(parts.password or "") or password,
    )


class Store:
    """A thread-safe handle on the database named in config (chDB allows one engine per process,
    so a process holds one Store and shares it)."""

    def __init__(self, url: str, config: StoreConfig) -> None:
        self.url = url
        self.config = config
        self._client = connect(url, config)
        self._lock = threading.Lock()

    @property
    def database(self) -> str:
        return self.config.database

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        with self._lock:
            return self._client.command(sql, parameters=parameters)

    def query(self, sql: str, parameters: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None) -> Result:
        with self._lock:
            result = self._client.query(sql, parameters=parameters, settings=settings)
        return Result(list(result.column_names), [tuple(r) for r in result.result_rows])

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        if not rows:
            return
        with self._lock:
            self._client.insert(f"{self.database}.{table}", rows, column_names=list(columns))

    def insert_rows(self, table: Table[Row], rows: Iterable[Row]) -> None:
        """Rows of the table's model, with the model's columns (tables.py)."""
        self.insert(table.name, table.tuples(rows), table.columns)

    def insert_json(self, table: str, lines: Sequence[bytes]) -> None:
        """Rows as JSON objects, one per line (see rows.py for how they are written)."""
        if not lines:
            return
        with self._lock:
            self._client.raw_insert(f"{self.database}.{table}", None, b"\n".join(lines),
                                    settings=JSON_INPUT_SETTINGS, fmt="JSONEachRow")

    def insert_row_binary(self, table: str, columns: Sequence[str], rows: Sequence[bytes]
                          ) -> None:
        """Rows already in ClickHouse's RowBinary, with these columns in this order."""
        if not rows:
            return
        with self._lock:
            self._client.raw_insert(f"{self.database}.{table}", list(columns), b"".join(rows),
                                    fmt="RowBinary")

    def close(self) -> None:
        with self._lock:
            try:
                self._client.close()
            except AttributeError:
                # grafana-client's niquests brings urllib3-future, which replaces urllib3; its
                # PoolManager has no `pools.lock`, which clickhouse-connect's close of a pool it
                # made itself (https with ca_cert or verify_tls off) needs. Clear it directly.
                http = getattr(self._client, "http", None)
                if http is None:
                    raise
                http.clear()
