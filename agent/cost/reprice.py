"""`watchkeeper reprice --since 7d`: price the samples stored since then again, by the price
table as config has it now (after a provider changed a price, or a model was added).

The samples table is partitioned by day, and the engine recomputes a computed column one
partition at a time (`ALTER TABLE ... MATERIALIZE COLUMN ... IN PARTITION`), so every day
from the one `since` falls in is repriced, whole. While an agent owns the embedded store the
command goes through its API (POST /api/reprice), which prices by the agent's own config.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from watchkeeper.agent.access import find_owner, open_store
from watchkeeper.agent.config import CostConfig, Settings
from watchkeeper.agent.cost.prices import sync_prices
from watchkeeper.agent.store import tables
from watchkeeper.agent.store.client import Store

PARTITION_ID = re.compile(r"^\d{8}$")  # toDate(ts): YYYYMMDD
COMPUTED = ("price_model", "cost_usd")  # in this order: cost_usd reads price_model
UNPRICED_SHOWN = 10


class RepriceRequest(BaseModel):
    """From the CLI or POST /api/reprice: reprice the days from `since` on."""

    model_config = ConfigDict(extra="forbid")
    since: datetime

    @field_validator("since")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)


def reprice_store(store: Store, config: CostConfig, request: RepriceRequest) -> dict[str, Any]:
    """Write the price table, recompute price_model and cost_usd in every partition from the
    day of `since`, and say what it found: calls, their cost, and the models left unpriced."""
    models = sync_prices(store, config)
    db, table = store.database, f"{store.database}.{tables.SAMPLES.name}"
    day = request.since.astimezone(UTC).date()
    found = store.query("SELECT DISTINCT partition_id FROM system.parts WHERE database = "
                        "{db:String} AND table = {table:String} AND active AND "
                        "partition_id >= {day:String} ORDER BY partition_id",
                        {"db": db, "table": tables.SAMPLES.name,
                         "day": day.strftime("%Y%m%d")}).rows
    partitions = [str(p) for (p,) in found if PARTITION_ID.match(str(p))]
    for partition in partitions:
        for column in COMPUTED:
            store.command(f"ALTER TABLE {table} {store.config.on_cluster} MATERIALIZE COLUMN "
                          f"{column} IN PARTITION ID '{partition}' SETTINGS mutations_sync = 2")
    since = {"since": request.since.astimezone(UTC).replace(tzinfo=None)}
    where = "ts >= {since:DateTime64(6)}"
    tokens = "(input_tokens IS NOT NULL OR output_tokens IS NOT NULL)"
    [(calls, priced, cost)] = store.query(
        f"SELECT count(), countIf(cost_usd IS NOT NULL), sum(cost_usd) FROM {table} "
        f"WHERE {where}", since).rows
    unpriced = store.query(
        f"SELECT if(response_model != '', response_model, request_model) AS model, count() "
        f"FROM {table} WHERE {where} AND price_model = '' AND {tokens} GROUP BY model "
        f"ORDER BY count() DESC, model LIMIT {UNPRICED_SHOWN}", since).rows
    return {"since": request.since.isoformat(), "days": len(partitions), "models": models,
            "calls": int(calls), "priced": int(priced), "cost_usd": float(cost or 0.0),
            "unpriced_models": [{"model": str(m), "calls": int(n)} for m, n in unpriced]}


def reprice(settings: Settings, request: RepriceRequest, api: str | None = None,
            token: str | None = None) -> dict[str, Any]:
    """Through the owner's API when an agent owns the store, else on the store itself."""
    owner = find_owner(settings, api, token)
    if owner is not None:
        result: dict[str, Any] = owner.request(
            "POST", "/api/reprice", json=request.model_dump(mode="json"), timeout=600)
        return result
    store = open_store(settings)
    try:
        return reprice_store(store, settings.cost, request)
    finally:
        store.close()
