"""The store on the real ClickHouse engine (chDB): migrations, dedup, read-only user SQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from watchkeeper.agent.config import StoreConfig
from watchkeeper.agent.store import rows
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import FSYNC, migrate, migrations, render
from watchkeeper.agent.store.tables import PRICES, SAMPLES, SCHEMA_MIGRATIONS, TABLES
from watchkeeper.collectors.normalise import Message, Part, Sample
from watchkeeper.collectors.normalise.sample import sample_id_for


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    handle = Store(f"chdb://{tmp_path / 'ch'}", StoreConfig(retention_days=9))
    migrate(handle)
    yield handle
    handle.close()


def _sample(span_id: str, text: str = "hi") -> Sample:
    return Sample(sample_id=sample_id_for("t" * 32, span_id), trace_id="t" * 32, span_id=span_id,
                  ts=datetime.now(UTC), service="svc", request_model="m",
                  input_messages=[Message(role="user", parts=[Part(content=text)])],
                  prompt_text=text, finish_reasons=["stop"], attributes={"k": "v"})


def test_migrations_are_versioned_and_idempotent(store: Store) -> None:
    assert migrate(store) == []
    versions = store.query(
        "SELECT version FROM watchkeeper.schema_migrations FINAL ORDER BY version").rows
    assert [v[0] for v in versions] == [m.version for m in migrations()]
    ddl = store.query("SHOW CREATE TABLE watchkeeper.samples").rows[0][0]
    assert "toIntervalDay(9)" in ddl and "ReplacingMergeTree" in ddl


def test_retention_follows_config_on_every_migrate(store: Store) -> None:
    store.config = StoreConfig(retention_days=3)
    migrate(store)
    assert "toIntervalDay(3)" in store.query("SHOW CREATE TABLE watchkeeper.spans").rows[0][0]


def test_cluster_rendering() -> None:
    statements = render(migrations()[0].sql, StoreConfig(cluster="prod", replicated=True))
    assert all("ON CLUSTER prod" in s for s in statements)
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/watchkeeper/samples', " \
           "'{replica}', ingested_at)" in statements[0]


def test_a_replicated_store_is_left_its_own_fsync_settings() -> None:
    replicated = StoreConfig(cluster="prod", replicated=True)
    assert "fsync" not in render(migrations()[0].sql, replicated)[0]
    assert "fsync" in render(migrations()[0].sql, StoreConfig())[0]
    [fsync] = [m for m in migrations() if "{fsync}" in m.sql]
    assert render(fsync.sql, replicated) == []
    # every table made before it (not schema_migrations); later ones are made with the settings
    assert len(render(fsync.sql, StoreConfig())) == len(BEFORE_FSYNC)


# the tables migration 0006 gives the fsync settings: those made before it
BEFORE_FSYNC = [t for t in TABLES if t not in (SCHEMA_MIGRATIONS, PRICES)]


def _syncs(store: Store) -> int:
    """Files and directories the engine has fsynced so far (counters of the whole process)."""
    return int(store.query("SELECT sum(value) FROM system.events "
                           "WHERE event IN ('FileSync', 'DirectorySync')").rows[0][0] or 0)


def _fsynced_tables(store: Store) -> list[str]:
    """The tables whose own settings (engine_full) sync every insert."""
    return sorted(row[0] for row in store.query(
        "SELECT name FROM system.tables WHERE database = {db:String} "
        "AND engine_full LIKE {fsync:String}",
        {"db": store.database, "fsync": f"%SETTINGS %{FSYNC}%"}).rows)


def test_every_insert_of_a_single_copy_store_is_synced(store: Store) -> None:
    """Each table says so in its own settings, and the engine does it: an insert of one row
    into any of them fsyncs files, and one into a table without the settings does not."""
    assert _fsynced_tables(store) == sorted(t.name for t in TABLES if t is not SCHEMA_MIGRATIONS)
    for table in TABLES:
        before = _syncs(store)
        # one column is enough: the others take their defaults
        column, value = (table.ttl, "now64()") if table.ttl else \
            ("model", "'x'") if table is PRICES else ("version", "999")
        store.command(f"INSERT INTO {store.database}.{table.name} ({column}) VALUES ({value})")
        synced = _syncs(store) - before
        assert (synced > 0) == (table is not SCHEMA_MIGRATIONS), (table.name, synced)


def test_a_store_made_before_gains_the_fsync_settings(store: Store) -> None:
    for table in BEFORE_FSYNC:
        store.command(f"ALTER TABLE {store.database}.{table.name} "
                      "RESET SETTING fsync_after_insert, fsync_part_directory")
    assert _fsynced_tables(store) == [PRICES.name]
    [fsync] = [m for m in migrations() if "{fsync}" in m.sql]
    store.command(f"ALTER TABLE {store.database}.schema_migrations DELETE "
                  "WHERE version = {v:UInt32} SETTINGS mutations_sync = 2", {"v": fsync.version})
    assert migrate(store) == [fsync.version]
    assert _fsynced_tables(store) == sorted([*(t.name for t in BEFORE_FSYNC), PRICES.name])


def test_sample_round_trip_and_duplicates_fold(store: Store) -> None:
    batch = rows.json_rows([_sample("a" * 16), _sample("b" * 16)])
    store.insert_json("samples", batch)
    store.insert_json("samples", batch)  # a replay: ReplacingMergeTree folds the copies
    store.insert_json("samples", rows.json_rows([_sample("a" * 16, "again")]))
    assert store.query("SELECT count() FROM watchkeeper.samples FINAL").rows == [(2,)]
    final = store.query("SELECT span_id, prompt_text, input_messages, finish_reasons, attributes "
                        "FROM watchkeeper.samples FINAL ORDER BY span_id").rows
    assert [r[0] for r in final] == ["a" * 16, "b" * 16]
    assert final[0][1] == "again"  # the newest copy wins
    hi = {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
    assert json.loads(final[1][2]) == [hi]
    assert final[1][3] == ["stop"] and final[1][4] == {"k": "v"}


def test_json_rows_store_every_field_as_given(store: Store) -> None:
    """The JSON row is the sample: each column reads back equal to the model's field."""
    text = 'Grüße, "quoted" \\ back\\slash, tab\t, emoji 🙂, [not, json'
    call = Part(type="tool_call", content=None, id="c1", name="lookup", arguments={"q": text})
    sample = _sample("d" * 16, text).model_copy(update={
        "ts": datetime.now(UTC).replace(microsecond=123456), "duration_ms": 12.25,
        "status": "error", "error_type": "RateLimitError", "input_tokens": 7,
        "output_messages": [Message(role="assistant", parts=[call], finish_reason="tool_calls")],
        "attributes": {"k": text, "n": "3"}, "redactions": 2, "source": "genai_latest"})
    store.insert_json("samples", rows.json_rows([sample]))
    result = store.query(f"SELECT {', '.join(SAMPLES.columns)} FROM watchkeeper.samples")
    stored = dict(zip(result.columns, result.rows[0], strict=True))
    expected = sample.model_dump()
    messages = TypeAdapter(list[Message])
    for side in ("input_messages", "output_messages"):
        assert messages.validate_json(stored.pop(side)) == getattr(sample, side)
        expected.pop(side)
    assert stored.pop("ts").replace(tzinfo=UTC) == expected.pop("ts")
    assert stored == expected
    assert stored["output_tokens"] is None  # left out of the JSON: the column's NULL


def test_sample_ids_are_stable() -> None:
    assert sample_id_for("a", "b") == sample_id_for("a", "b") != sample_id_for("a", "c")
    assert isinstance(sample_id_for("a", "b"), uuid.UUID)
