"""Where SQL a person wrote runs: engine-enforced read-only sessions with bounded resources,
apart from the sessions that capture data.

Each sandbox session is its own engine session (chDB allows many handles to its one engine,
each with its own settings, and runs them in parallel without holding the GIL). On chDB the
limits are set on the session and then `readonly = 1`, after which the engine refuses any
change of setting, from a SETTINGS clause or otherwise, for the life of the session. On a
ClickHouse server the session logs in as the read-only user whose settings profile carries
the same limits (`watchkeeper migrate --create-readonly-user`); without one configured, the limits
and `readonly` go with every request. Before anything runs, the engine's own parser decides
whether the statement is allowed (sql_policy.py).

Running queries are tagged, so stop() cancels them with KILL QUERY from the trusted session
instead of waiting out their time limit.
"""

from __future__ import annotations

import logging
import queue
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from watchkeeper.agent.config import QueryLimits, StoreConfig
from watchkeeper.agent.store.client import Result, Store, connect
from watchkeeper.agent.store.sql_policy import Policy, QueryRefused

log = logging.getLogger(__name__)

# system tables a person may read: what exists, not what others do or who they are
SYSTEM_TABLES = frozenset({"one", "numbers", "numbers_mt", "zeros", "tables", "columns",
                           "parts", "databases", "functions", "table_functions"})
TAG = "\n/* watchkeeper:user-query:{} */"
# Engine error names that mean a limit stopped the query, and the setting that did.
LIMITS = {"TIMEOUT_EXCEEDED": "max_execution_time", "MEMORY_LIMIT_EXCEEDED": "max_memory_usage",
          "TOO_MANY_ROWS": "max_rows_to_read", "TOO_MANY_ROWS_OR_BYTES": "max_rows_to_read",
          "QUERY_WAS_CANCELLED": "cancelled"}


class QueryBusy(Exception):
    """Every sandbox session is busy for longer than the queue waits: try again later."""


class QueryFailed(Exception):
    """The engine refused or stopped the query; `limit` names the limit that stopped it."""

    def __init__(self, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.limit = limit


def engine_settings(limits: QueryLimits) -> dict[str, Any]:
    """The limits as engine settings, `readonly` last (after it no setting can change)."""
    return {
        "max_execution_time": limits.max_execution_time_s,
        "timeout_overflow_mode": "throw",
        "max_memory_usage": limits.max_memory_bytes,
        # one row over the limit tells a cut result from one that fits (break stops at a
        # block boundary; run() cuts to the limit exactly)
        "max_result_rows": limits.max_result_rows + 1,
        "result_overflow_mode": "break",
        "max_rows_to_read": limits.max_rows_to_read,
        "read_overflow_mode": "throw",
        "max_threads": limits.max_threads,
        "allow_introspection_functions": 0,
        "readonly": 1,
    }


@dataclass
class _Session:
    client: Client
    settings: dict[str, Any] | None  # per request (a server without a reader), else None


class Sandbox:
    """A small pool of read-only sessions; run() takes one, waiting at most the queue time."""

    def __init__(self, store: Store, limits: QueryLimits) -> None:
        self.store = store
        self.limits = limits
        self._idle: queue.Queue[_Session] = queue.Queue()
        self._running: set[str] = set()
        self._closed = False
        for _ in range(limits.max_concurrent):
            self._idle.put(_open_session(store.url, store.config, limits))
        session = self._idle.get()
        functions = session.client.query("SELECT lower(name) FROM system.table_functions",
                                         settings=session.settings).result_rows
        self._idle.put(session)
        self.policy = Policy(store.database, SYSTEM_TABLES,
                             frozenset(str(row[0]) for row in functions))

    def run(self, sql: str, parameters: dict[str, Any] | None = None) -> Result:
        """Check the statement with the engine's parser, then run it in a read-only session.
        Raises QueryRefused (not allowed), QueryBusy (no session free in time) or QueryFailed
        (the engine's error, with the limit that stopped it, if one did)."""
        statement = sql.strip().rstrip(";").strip()
        if not statement:
            raise QueryRefused("empty statement")
        with self._session() as session:
            self.policy.check(self._ast(session, statement, parameters))
            tag = TAG.format(uuid.uuid4().hex)
            self._running.add(tag)
            try:
                result = session.client.query(statement + tag, parameters=parameters,
                                              settings=session.settings)
            except (ClickHouseError, ValueError, TypeError) as exc:  # also parameters unbound
                raise _failed(exc) from None
            finally:
                self._running.discard(tag)
        rows = result.result_rows
        limit = self.limits.max_result_rows
        return Result(list(result.column_names), [tuple(r) for r in rows[:limit]],
                      truncated=len(rows) > limit)

    def _ast(self, session: _Session, statement: str,
             parameters: dict[str, Any] | None) -> list[str]:
        try:
            lines = session.client.query("EXPLAIN AST " + statement, parameters=parameters,
                                         settings=session.settings).result_rows
        except (ClickHouseError, ValueError, TypeError) as exc:
            raise _failed(exc) from None
        return [str(row[0]) for row in lines]

    @contextmanager
    def _session(self) -> Iterator[_Session]:
        if self._closed:
            raise QueryBusy("the agent is stopping")
        try:
            session = self._idle.get(timeout=self.limits.queue_timeout_s)
        except queue.Empty:
            raise QueryBusy(f"all {self.limits.max_concurrent} query slots stayed busy for "
                            f"{self.limits.queue_timeout_s:g} s") from None
        try:
            yield session
        finally:
            self._idle.put(session)

    def cancel_running(self) -> int:
        """KILL every user query now running (from the trusted session); how many."""
        tags = list(self._running)
        for tag in tags:
            try:
                self.store.command("KILL QUERY WHERE position(query, {tag:String}) > 0 ASYNC",
                                   {"tag": tag})
            except ClickHouseError as exc:
                log.warning("could not cancel a user query", extra={"error": str(exc)})
        return len(tags)

    def close(self, timeout_s: float = 5.0) -> None:
        """Refuse new queries, cancel running ones, close the sessions as they come back."""
        self._closed = True
        self.cancel_running()
        deadline = time.monotonic() + timeout_s
        for _ in range(self.limits.max_concurrent):
            try:
                session = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                log.warning("a user query outlived its cancellation; leaving its session")
                return
            session.client.close()


def _open_session(url: str, config: StoreConfig, limits: QueryLimits) -> _Session:
    if urlsplit(url).scheme == "chdb":
        client = connect(url, config)
        client.database = config.database
        for name, value in engine_settings(limits).items():  # readonly comes last
            literal = f"'{value}'" if isinstance(value, str) else str(value)
            client.command(f"SET {name} = {literal}")
        return _Session(client, None)
    if config.reader_password is not None:
        reader = config.model_copy(update={"username": config.reader_username,
                                           "password": config.reader_password})
        client = connect(url, reader)
        client.database = config.database
        return _Session(client, None)  # the reader's settings profile holds the limits
    log.warning("user SQL runs as the store's own user with per-request read-only settings; "
                "set store.reader_password for the read-only account")
    client = connect(url, config)
    client.database = config.database
    return _Session(client, engine_settings(limits))


def _failed(exc: Exception) -> QueryFailed:
    message = str(exc).strip()
    limit = next((setting for name, setting in LIMITS.items() if f"({name})" in message), None)
    return QueryFailed(message, limit)
