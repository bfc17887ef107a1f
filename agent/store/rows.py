"""Rows for the capture tables as JSON lines (ClickHouse's JSONEachRow). The models' field names
are the tables' column names (tables.py holds them to the schema), so pydantic-core serialises a
row in one call, and ingest sends the very same bytes to wk.samples: one serialisation per
sample for the bus and the table.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel


def json_row(model: BaseModel) -> bytes:
    """Unset optional values are left out: the column's default (NULL) takes their place."""
    return model.__pydantic_serializer__.to_json(model, exclude_none=True)


def json_rows(models: Iterable[BaseModel]) -> list[bytes]:
    return [json_row(m) for m in models]
