"""The replay guard for what the watch service writes (decision 0004, as ingest's samples).

Why a part of its own: the service commits wk.samples offsets only after storing, so a crash
(even `kill -9`) or a lost partition replays the uncommitted stretch, and the stretch is scored
again. Rows for samples that an earlier pass may have stored (read from below the partition's
replay horizon, or part of a pass that failed) are looked up first, and only those the table
lacks go in; every other sample is new to the store, so the steady state runs no query. Each
table is checked by what lands whole:

- scores by (sample_id, watcher, field): a watcher's labels for one text share the sample's
  `ts`, so they are in the same part of one insert;
- embeddings by (sample_id, model, field): one vector;
- flags by flag_id, a function of (sample, source, label, field).

The tables are checked one by one, so a pass that stopped between its inserts is completed by
the replay: scores found, embeddings and flags filled in.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Protocol, TypeVar

from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.replay import stored_keys
from watchkeeper.agent.store.tables import EMBEDDINGS, FLAGS, SCORES, Table

KEYS = {SCORES.name: ("sample_id", "watcher", "field"),
        EMBEDDINGS.name: ("sample_id", "model", "field"),
        FLAGS.name: ("flag_id",)}


class _Row(Protocol):
    @property
    def sample_id(self) -> uuid.UUID | None: ...

    @property
    def ts(self) -> datetime: ...


R = TypeVar("R", bound=_Row)


def insert_new(store: Store, table: Table[R], rows: list[R],
               replayed: Collection[uuid.UUID]) -> None:
    """Insert the rows, but not those of replayed samples whose key the table holds."""
    key = KEYS[table.name]
    check = [row for row in rows if row.sample_id in replayed]
    if check:
        stamps = [row.ts for row in check]
        found = stored_keys(store, table, key, {getattr(row, key[0]) for row in check},
                            min(stamps), max(stamps))
        rows = [row for row in rows if row.sample_id not in replayed
                or tuple(str(getattr(row, column)) for column in key) not in found]
    store.insert_rows(table, rows)
