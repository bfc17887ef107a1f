"""The price table: the one shipped with the package (prices.json: per model, US dollars per
million input, cached-input and output tokens, and the date each was checked), extended or
overridden by config (`cost.prices`), and how the store prices samples by it.

The engine does the pricing: `samples.price_model` and `samples.cost_usd` are computed columns
(migration 0009) whose expressions carry the table, so every writer's rows (the Python and
the compiled ingest path) are priced alike as they are inserted. `sync_prices` sets the
expressions at every start (ALTER ... MODIFY COLUMN: metadata only, replicated to every
replica, skipped when the table has not changed) and records the table in `prices`. A model
the table lacks leaves `cost_usd` NULL: counted and shown as unpriced, never a guessed 0.
Carrying the prices in the expression rather than in a dictionary keeps inserts independent
of a dictionary's credentials: a dictionary over a local table logs in as a user, and an
insert would fail on the day that user's password changed.

A sample matches by its response model, then its request model, each lower-cased as sent,
then without a provider prefix ("openai/", "models/", "anthropic.") and a version suffix (a
date, "-0125", "-002", "-v1:0", "-latest"). Cached input tokens (OpenTelemetry's
gen_ai.usage.cache_read.input_tokens, or OpenLLMetry's and OpenInference's names) are part of
input_tokens and charged at the cached rate.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources

from pydantic import BaseModel, ConfigDict

from watchkeeper.agent.config import CostConfig, ModelPrice
from watchkeeper.agent.store import tables
from watchkeeper.agent.store.client import Store

# What a model name loses before the second lookup (re2, as ClickHouse reads it).
PREFIX = r"^(?:.*/)?(?:[a-z]+\.)?"
SUFFIX = (r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-\d{4}|-\d{3}|-latest)?"
          r"(?:-v\d+(?::\d+)?)?$")
CACHED_TOKENS = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                 "llm.token_count.prompt_details.cache_read")
COMMENT = "priced by agent/cost/prices.py, table sha256 "


class PackagedPrices(BaseModel):
    """prices.json: what the prices are (`about`) and one entry per model."""

    model_config = ConfigDict(extra="forbid")
    about: str
    models: list[ModelPrice]


def packaged_prices() -> list[ModelPrice]:
    text = resources.files("watchkeeper.agent.cost").joinpath("prices.json").read_text()
    return PackagedPrices.model_validate(json.loads(text)).models


def price_rows(config: CostConfig) -> list[tables.PriceRow]:
    """The packaged table (unless `packaged` is off) with config's entries added, a config
    entry replacing the packaged one of the same model (matched lower-cased)."""
    entries = [(price, "package") for price in packaged_prices()] if config.packaged else []
    entries += [(price, "config") for price in config.prices]
    rows: dict[str, tables.PriceRow] = {}
    for price, origin in entries:
        model = price.model.strip().lower()
        rows[model] = tables.PriceRow(
            model=model, provider=price.provider, input=price.input,
            cached_input=price.input if price.cached_input is None else price.cached_input,
            cached_listed=price.cached_input is not None, output=price.output,
            checked=price.checked, origin=origin)
    return sorted(rows.values(), key=lambda row: row.model)


def _literal(text: str) -> str:
    """A ClickHouse string literal (model names are also held to a plain pattern in config)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _array(values: list[str] | list[float], kind: str) -> str:
    items = ", ".join(_literal(v) if isinstance(v, str) else repr(float(v)) for v in values)
    return f"CAST([{items}], 'Array({kind})')"


def expressions(rows: list[tables.PriceRow]) -> tuple[str, str]:
    """The computed columns' expressions for a price table: (price_model, cost_usd)."""
    if not rows:
        return "''", "CAST(NULL, 'Nullable(Float64)')"
    keys = _array([r.model for r in rows], "String")

    def bare(column: str) -> str:
        return (f"replaceRegexpOne(replaceRegexpOne(lower({column}), {_literal(PREFIX)}, ''), "
                f"{_literal(SUFFIX)}, '')")

    tries = []
    for column in ("response_model", "request_model"):
        for name in (f"lower({column})", bare(column)):
            tries.append(f"has({keys}, {name}), {name}")
    price_model = f"multiIf({', '.join(tries)}, '')"
    cached = "greatest(" + ", ".join(f"toUInt32OrZero(attributes[{_literal(k)}])"
                                     for k in CACHED_TOKENS) + ")"
    read = f"least({cached}, ifNull(input_tokens, 0))"

    def price(values: list[float]) -> str:
        return f"transform(price_model, {keys}, {_array(values, 'Float64')}, 0.)"

    cost = (f"if(price_model = '' OR (input_tokens IS NULL AND output_tokens IS NULL), NULL, "
            f"((ifNull(input_tokens, 0) - {read}) * {price([r.input for r in rows])} "
            f"+ {read} * {price([r.cached_input for r in rows])} "
            f"+ ifNull(output_tokens, 0) * {price([r.output for r in rows])}) / 1000000)")
    return price_model, cost


def sync_prices(store: Store, config: CostConfig) -> int:
    """Price the samples inserted from now on by config's table: set the computed columns'
    expressions (when the table changed) and record the table in `prices`. Rows stored before
    keep their cost until `watchkeeper reprice`. Returns the number of models priced."""
    rows = price_rows(config)
    price_model, cost = expressions(rows)
    digest = hashlib.sha256(f"{price_model}\n{cost}".encode()).hexdigest()
    db, samples = store.database, f"{store.database}.{tables.SAMPLES.name}"
    current = store.query("SELECT comment FROM system.columns WHERE database = {db:String} "
                          "AND table = {table:String} AND name = 'cost_usd'",
                          {"db": db, "table": tables.SAMPLES.name}).rows
    if current != [(COMMENT + digest,)]:
        store.command(
            f"ALTER TABLE {samples} {store.config.on_cluster} "
            f"MODIFY COLUMN price_model LowCardinality(String) MATERIALIZED {price_model}, "
            f"MODIFY COLUMN cost_usd Nullable(Float64) MATERIALIZED {cost} "
            f"COMMENT {_literal(COMMENT + digest)}")
    store.command(f"TRUNCATE TABLE IF EXISTS {db}.{tables.PRICES.name} {store.config.on_cluster}")
    store.insert_rows(tables.PRICES, rows)
    return len(rows)
