"""The store on the real ClickHouse engine (chDB): migrations, dedup, read-only user SQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watchkeeper.agent.config import StoreConfig
from watchkeeper.agent.store import rows
from watchkeeper.agent.store.client import ReadOnlyViolation, Store
from watchkeeper.agent.store.migrate import migrate, migrations, render
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


def test_sample_round_trip_and_duplicates_fold(store: Store) -> None:
    batch = [rows.sample_row(_sample("a" * 16)), rows.sample_row(_sample("b" * 16))]
    store.insert("samples", batch, rows.SAMPLE_COLUMNS, dedup_token="range-0-1")
    store.insert("samples", batch, rows.SAMPLE_COLUMNS, dedup_token="range-0-1")  # replay
    assert store.query("SELECT count() FROM watchkeeper.samples").rows == [(2,)]
    store.insert("samples", [rows.sample_row(_sample("a" * 16, "again"))], rows.SAMPLE_COLUMNS)
    final = store.query("SELECT span_id, prompt_text, input_messages, finish_reasons, attributes "
                        "FROM watchkeeper.samples FINAL ORDER BY span_id").rows
    assert [r[0] for r in final] == ["a" * 16, "b" * 16]
    assert final[0][1] == "again"  # the newest copy wins
    hi = {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
    assert json.loads(final[1][2]) == [hi]
    assert final[1][3] == ["stop"] and final[1][4] == {"k": "v"}


@pytest.mark.parametrize("sql", [
    "DROP TABLE samples",
    "INSERT INTO samples (trace_id) VALUES ('x')",
    "SELECT 1; DROP TABLE samples",
    "SELECT * FROM file('/etc/passwd')",
    "SELECT * FROM url('http://127.0.0.1:1/x', CSV)",
])
def test_user_sql_is_read_only(store: Store, sql: str) -> None:
    with pytest.raises(ReadOnlyViolation):
        store.query_readonly(sql)


def test_user_sql_reads_and_binds_parameters(store: Store) -> None:
    store.insert("samples", [rows.sample_row(_sample("c" * 16))], rows.SAMPLE_COLUMNS)
    result = store.query_readonly("SELECT span_id FROM samples WHERE service = {s:String}",
                                  {"s": "svc"})
    assert result.rows == [("c" * 16,)]
    assert store.query_readonly("SELECT number FROM system.numbers LIMIT 50",
                                max_rows=10).rows[:1] == [(0,)]


def test_sample_ids_are_stable() -> None:
    assert sample_id_for("a", "b") == sample_id_for("a", "b") != sample_id_for("a", "c")
    assert isinstance(sample_id_for("a", "b"), uuid.UUID)
