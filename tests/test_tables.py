"""The tables as contracts (agent/store/tables.py): every row model against the schema the
migrations build on the real engine, column for column and type for type, both ways; the
engines and retention the migrations give each table; and the compiled ingest path's column
list against the samples model."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from watchkeeper.agent.config import StoreConfig
from watchkeeper.agent.store import tables
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import migrate
from watchkeeper.agent.store.tables import TABLES, Table

Columns = dict[str, dict[str, str]]  # table -> column -> {"type", "default_kind"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    handle = Store(f"chdb://{tmp_path_factory.mktemp('tables') / 'ch'}", StoreConfig())
    migrate(handle)
    yield handle
    handle.close()


def _schema(store: Store) -> Columns:
    result = store.query("SELECT table, name, type, default_kind FROM system.columns "
                         "WHERE database = {db:String} AND table NOT IN (SELECT name FROM "
                         "system.tables WHERE database = {db:String} AND engine = 'Dictionary')",
                         {"db": store.database})  # a dictionary serves a table, it is not one
    schema: Columns = {}
    for row in result.records():
        schema.setdefault(row["table"], {})[row["name"]] = row
    return schema


def _expected(annotation: Any) -> str:
    """The ClickHouse type a model's field is stored as, in the form `_stored` gives."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        [inner] = [a for a in args if a is not type(None)]
        return f"Nullable({_expected(inner)})"
    if origin is Literal and all(isinstance(a, str) for a in args):
        return "String"
    if origin is list:
        [item] = args
        if isinstance(item, type) and issubclass(item, BaseModel):
            return "String"  # message lists travel as their JSON text
        return f"Array({_expected(item)})"
    if origin is dict:
        key, value = args
        return f"Map({_expected(key)}, {_expected(value)})"
    simple = {uuid.UUID: "UUID", datetime: "DateTime64(UTC)", date: "Date", bool: "Bool",
              int: "Int", float: "Float", str: "String"}
    if annotation in simple:
        return simple[annotation]
    raise TypeError(f"no ClickHouse type for {annotation!r}")


def _stored(clickhouse_type: str) -> str:
    """A column's type with what the model cannot say left out: LowCardinality, the width of
    numbers, the precision of timestamps (the time zone stays: rows are written in UTC)."""
    text = re.sub(r"LowCardinality\(([^()]*(?:\([^()]*\))?)\)", r"\1", clickhouse_type)
    text = re.sub(r"\bU?Int\d+\b", "Int", text)
    text = re.sub(r"\bFloat\d+\b", "Float", text)
    return re.sub(r"DateTime64\(\d+, '(\w+)'\)", r"DateTime64(\1)", text)


def _hints(table: Table[Any]) -> dict[str, Any]:
    return typing.get_type_hints(table.model)


def mismatches(table: Table[Any], schema: Columns) -> list[str]:
    """What differs between a table's model and its columns in the store, in words."""
    columns = schema.get(table.name)
    if columns is None:
        return [f"{table.name}: no such table"]
    found = []
    model = set(table.columns)
    for name in sorted(set(columns) - model - set(table.server)):
        found.append(f"{table.name}.{name}: in the table, not in the model")
    for name in sorted(model - set(columns)):
        found.append(f"{table.name}.{name}: in the model, not in the table")
    for name in sorted(set(table.server) & model):
        found.append(f"{table.name}.{name}: the server fills it, yet the model writes it")
    for name in table.server:
        if name in columns and columns[name]["default_kind"] not in ("DEFAULT", "MATERIALIZED"):
            found.append(f"{table.name}.{name}: left to the server, but it has no default")
    hints = _hints(table)
    for name in sorted(model & set(columns)):
        want, have = _expected(hints[name]), _stored(columns[name]["type"])
        if want != have:
            found.append(f"{table.name}.{name}: the model says {want} ({hints[name]}), the "
                         f"table {have} ({columns[name]['type']})")
    return found


@pytest.mark.parametrize("table", TABLES, ids=[t.name for t in TABLES])
def test_each_model_is_its_table(store: Store, table: Table[Any]) -> None:
    assert mismatches(table, _schema(store)) == []


def test_every_table_has_a_model(store: Store) -> None:
    assert sorted(_schema(store)) == sorted(t.name for t in TABLES)


def test_engines_and_retention_are_the_models(store: Store) -> None:
    """The version column ReplacingMergeTree keeps the newest copy by, and the TTL column."""
    engines = {row["name"]: row["engine_full"] for row in store.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
        {"db": store.database}).records()}
    for table in TABLES:
        engine = engines[table.name]
        version = f"ReplacingMergeTree({table.version})" if table.version else \
            "ReplacingMergeTree ORDER BY"
        assert version in engine, (table.name, engine)
        if table.ttl:
            assert f"TTL toDateTime({table.ttl}) + toIntervalDay(" in engine, (table.name, engine)
        else:
            assert " TTL " not in engine, (table.name, engine)


def test_a_column_on_one_side_only_is_a_mismatch(store: Store) -> None:
    """The check itself: an extra column in the table, and one in the model, are both found,
    as is a column whose type the model gets wrong."""
    schema = _schema(store)
    flags = schema["flags"]
    added = {**schema, "flags": {**flags, "status": {"type": "LowCardinality(String)",
                                                     "default_kind": "DEFAULT"}}}
    assert mismatches(tables.FLAGS, added) == ["flags.status: in the table, not in the model"]

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Wider(tables.FlagRow):
        reviewer: str

    wider = dataclasses.replace(tables.FLAGS, model=Wider)
    assert mismatches(wider, schema) == ["flags.reviewer: in the model, not in the table"]
    retyped = {**schema, "flags": {**flags, "score": {"type": "String", "default_kind": ""}}}
    [message] = mismatches(tables.FLAGS, retyped)
    assert message.startswith("flags.score: the model says Float")


def test_types_are_read_as_the_engine_writes_them() -> None:
    assert _stored("Array(LowCardinality(String))") == "Array(String)"
    assert _stored("Nullable(UInt32)") == "Nullable(Int)"
    assert _stored("DateTime64(6, 'UTC')") == "DateTime64(UTC)"
    assert _expected(list[str]) == "Array(String)"
    assert _expected(float | None) == "Nullable(Float)"


def test_the_compiled_path_writes_the_samples_models_columns() -> None:
    """native/src/row.rs writes RowBinary in its own SAMPLE_COLUMNS order; ingest names the
    samples model's columns for the insert, so both must be the same list (native.py refuses
    a build whose list differs; this names the difference)."""
    compiled = pytest.importorskip(
        "watchkeeper_native", reason="watchkeeper-native is not installed (pip install ./native)")
    assert tuple(compiled.SAMPLE_COLUMNS) == tables.SAMPLES.columns


def test_rows_are_written_by_name(store: Store) -> None:
    """Store.insert_rows names the model's columns: a row reads back field for field."""
    row = tables.FlagRow(flag_id=uuid.uuid4(), sample_id=None,
                         ts=datetime.now(UTC).replace(microsecond=654321),
                         service="svc", source="detector:x", reason="why", label="drift",
                         field="", score=0.5)
    store.insert_rows(tables.FLAGS, [row])
    [stored] = store.query(
        f"SELECT {', '.join(tables.FLAGS.columns)} FROM {store.database}.flags "
        "WHERE flag_id = {id:UUID}", {"id": row.flag_id}).records()
    assert stored.pop("ts").replace(tzinfo=UTC) == row.ts
    assert stored == {k: v for k, v in dataclasses.asdict(row).items() if k != "ts"}
