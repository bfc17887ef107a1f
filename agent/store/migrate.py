"""Versioned, idempotent schema migrations. Each file in migrations/ is applied once, in order,
and recorded in schema_migrations; retention (TTL) is re-applied from config on every run.
Identifiers come from validated config; data values are never interpolated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

from watchkeeper.agent.config import StoreConfig
from watchkeeper.agent.store import tables
from watchkeeper.agent.store.client import Store

log = logging.getLogger(__name__)

# table -> ReplacingMergeTree version column, for the tables the migrations create
TABLES = {t.name: t.version for t in tables.TABLES if t.version is not None}
# table -> the column retention counts from (`{ttl}` in a migration is `ts`)
TTL_COLUMNS = {t.name: t.ttl for t in tables.TABLES if t.ttl is not None}
TTL_COLUMN = "ts"
# A single-copy store (chDB, one server) has only its own disk: each insert is on it (files
# and part directory fsynced) before ingest or watch commits the bus offset past its rows, or
# a power cut after the commit would lose rows that no replay brings back (migration 0006).
FSYNC = "fsync_after_insert = 1, fsync_part_directory = 1"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("watchkeeper.agent.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(version), name, entry.read_text()))
    return sorted(found, key=lambda m: m.version)


def _engine(config: StoreConfig, table: str, version_column: str) -> str:
    if config.replicated:
        path = f"'/clickhouse/tables/{{shard}}/{config.database}/{table}'"
        return f"ReplicatedReplacingMergeTree({path}, '{{replica}}', {version_column})"
    return f"ReplacingMergeTree({version_column})"


def render(sql: str, config: StoreConfig) -> list[str]:
    """The statements of a migration for this store. A statement naming `{fsync}` (the
    settings below) is left out on a replicated store, whose other copies cover a lost disk."""
    on_cluster = config.on_cluster
    settings = "index_granularity = 8192"
    if not config.replicated:
        # the window lets a replayed batch with the same insert_deduplication_token be dropped
        settings += f", non_replicated_deduplication_window = 10000, {FSYNC}"
    values = {
        "db": config.database,
        "on_cluster": on_cluster,
        "ttl": f"TTL toDateTime({TTL_COLUMN}) + INTERVAL {config.retention_days} DAY",
        "retention_days": config.retention_days,
        "table_settings": settings,
        "fsync": FSYNC,
        **{f"engine_{t}": _engine(config, t, v) for t, v in TABLES.items()},
    }
    statements = [s.strip() for s in sql.split(";\n") if s.strip()]
    return [s.format(**values) for s in statements
            if not (config.replicated and "{fsync}" in s)]


def pending(store: Store) -> list[Migration]:
    """The migrations this store has not had yet (all of them for a new store)."""
    config = store.config
    on_cluster = config.on_cluster
    store.command(f"CREATE DATABASE IF NOT EXISTS {config.database} {on_cluster}")
    store.command(
        f"CREATE TABLE IF NOT EXISTS {config.database}.schema_migrations {on_cluster} "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = {int(r[0]) for r in store.query(
        f"SELECT version FROM {config.database}.schema_migrations").rows}
    return [m for m in migrations() if m.version not in done]


def migrate(store: Store) -> list[int]:
    """Apply what is missing; returns the versions applied now."""
    config = store.config
    on_cluster = config.on_cluster
    applied = []
    for migration in pending(store):
        for statement in render(migration.sql, config):
            store.command(statement)
        store.insert_rows(tables.SCHEMA_MIGRATIONS,
                          [tables.MigrationRow(version=migration.version, name=migration.name)])
        log.info("migration applied", extra={"version": migration.version,
                                             "migration": migration.name})
        applied.append(migration.version)
    for table, column in TTL_COLUMNS.items():
        store.command(f"ALTER TABLE {config.database}.{table} {on_cluster} MODIFY TTL "
                      f"toDateTime({column}) + INTERVAL {config.retention_days} DAY")
    return applied
