"""The read-only account that user SQL runs as on a ClickHouse server.

The server enforces it: SELECT on the Watchkeeper database and a few system tables, nothing
else (no INSERT, no DDL, no SOURCES grants, so no table function reaches files, URLs or other
servers), and a settings profile whose limits are constant, `readonly = 1` among them, so no
query can lift them. `watchkeeper migrate --create-readonly-user` runs these statements as the
store's admin user; chDB has no accounts (the embedded store confines user SQL per session
instead, see sandbox.py).
"""

from __future__ import annotations

import hashlib
import secrets

from watchkeeper.agent.config import QueryLimits, StoreConfig
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.sandbox import SYSTEM_TABLES, engine_settings


class ReaderError(ValueError):
    """The reader account cannot be created as configured: says what is missing."""


def _literal(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


def reader_statements(config: StoreConfig, limits: QueryLimits, *,
                      salt: str | None = None) -> list[str]:
    """The DDL, in order. The password goes over as a salted SHA-256 hash, never as text, so
    it appears in no query log."""
    user = config.reader_username
    if config.reader_password is None:
        raise ReaderError("store.reader_password (or store.reader_password_file, or "
                          "WATCHKEEPER_STORE__READER_PASSWORD_FILE) is required")
    password = config.reader_password.get_secret_value()
    salt = salt or secrets.token_hex(16)
    digest = hashlib.sha256((password + salt).encode()).hexdigest()
    cluster = f" {config.on_cluster}" if config.on_cluster else ""
    profile = f"{user}_profile"
    settings = {**engine_settings(limits),
                "max_concurrent_queries_for_user": limits.max_concurrent}
    constants = ", ".join(f"{name} = {_literal(value)} CONST" for name, value in settings.items())
    statements = [
        f"CREATE SETTINGS PROFILE OR REPLACE {profile}{cluster} SETTINGS {constants}",
        f"CREATE USER OR REPLACE {user}{cluster} IDENTIFIED WITH sha256_hash BY '{digest}' "
        f"SALT '{salt}' DEFAULT DATABASE {config.database} SETTINGS PROFILE '{profile}'",
        f"GRANT{cluster} SELECT ON {config.database}.* TO {user}",
    ]
    statements += [f"GRANT{cluster} SELECT ON system.{table} TO {user}"
                   for table in sorted(SYSTEM_TABLES)]
    return statements


def create_reader(store: Store, limits: QueryLimits) -> str:
    """Create (or replace) the reader account; its name."""
    for statement in reader_statements(store.config, limits):
        store.command(statement)
    return store.config.reader_username
