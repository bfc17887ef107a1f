"""Queries for Grafana's ClickHouse data source (plugin `grafana-clickhouse-datasource`) in
the foundation SDK's builder style. The SDK ships no model for this plugin, so this module is
that model: the SQL editor's query JSON, with the plugin's own field names."""

from __future__ import annotations

from typing import Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

PLUGIN = "grafana-clickhouse-datasource"
DATASOURCE_UID = "watchkeeper-clickhouse"
DATASOURCE = DataSourceRef(type_val=PLUGIN, uid=DATASOURCE_UID)
QueryType = Literal["table", "timeSeries", "logs", "traces"]


class ClickHouseQuery(cogvariants.Dataquery):
    """One SQL-editor query of the ClickHouse plugin."""

    def __init__(self, raw_sql: str = "", query_type: QueryType = "table",
                 ref_id: str = "A") -> None:
        self.raw_sql = raw_sql
        self.query_type = query_type
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        return {"refId": self.ref_id, "datasource": DATASOURCE.to_json(), "editorType": "sql",
                "queryType": self.query_type, "rawSql": self.raw_sql,
                # format 1 = table, 0 = time series: what the plugin's SQL editor stores
                "format": 0 if self.query_type == "timeSeries" else 1}


class Query(cogbuilder.Builder[ClickHouseQuery]):
    def __init__(self, raw_sql: str) -> None:
        self._internal = ClickHouseQuery(raw_sql.strip())

    def build(self) -> ClickHouseQuery:
        return self._internal

    def time_series(self) -> Self:
        self._internal.query_type = "timeSeries"
        return self

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self
