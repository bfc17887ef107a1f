"""The replay guard's lookup (decision 0004), shared by ingest and watch: which rows a table
already holds for records a consumer reads again after an earlier run, or the partition's
earlier owner, stored them without committing. Each writer asks only about the records below
its partitions' replay horizons, so the steady state runs no query.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.tables import Table


def stored_keys(store: Store, table: Table[Any], key: Sequence[str],
                ids: Collection[uuid.UUID] | Collection[str], lo: datetime, hi: datetime
                ) -> set[tuple[str, ...]]:
    """The distinct `key` tuples (as text) of the table's rows whose first key column (a UUID,
    or a String when `ids` are text) is one of `ids`, with `ts` in [lo, hi] (the tables it
    serves are partitioned by `ts`: the range keeps the lookup to the replayed records'
    partitions). Later key entries may be expressions (`toUnixTimestamp64Micro(ts)`)."""
    if not ids:
        return set()
    columns = ", ".join(f"toString({column})" for column in key)
    kind = "String" if all(isinstance(i, str) for i in ids) else "UUID"
    found = store.query(
        f"SELECT DISTINCT {columns} FROM {store.database}.{table.name} "
        f"WHERE {key[0]} IN {{ids:Array({kind})}} "
        "AND ts BETWEEN {lo:DateTime64(6)} AND {hi:DateTime64(6)}",
        parameters={"ids": list(ids), "lo": lo, "hi": hi})
    return {tuple(row) for row in found.rows}
