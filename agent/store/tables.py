"""The tables as contracts: one typed row model per table, the only place a table's columns
are named. Writers build rows of the model and insert them with its columns
(`Store.insert_rows`); readers go by column name, never by position. tests/test_tables.py holds
every model to the migrated schema (`system.columns`, both ways) and the compiled ingest path's
column list to the samples model.

The capture tables' rows are the pydantic models ingest already writes as JSON lines
(`collectors/normalise/sample.py`: one serialisation per sample for the bus and the table);
the others are frozen dataclasses, cheap enough for the watchers' per-label rows. Columns the
server fills (`DEFAULT now64(3)`: when a row was stored) are named under `server`: no writer
sends them, and a model leaves them out.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from operator import attrgetter
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from watchkeeper.collectors.normalise.sample import Feedback, Sample, SpanRecord

Row = TypeVar("Row")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreRow:
    """What one watcher said about one field of one sample, for one label (`_error` when it
    failed on the item)."""

    sample_id: uuid.UUID
    ts: datetime
    service: str
    watcher: str
    version: str
    field: str
    label: str
    score: float
    flagged: bool
    threshold: float | None
    latency_ms: float
    error: str
    source: str = "watcher"  # or "event": a gen_ai.evaluation.result someone sent
    evaluator_type: str = ""  # an event's gen_ai.evaluation.evaluator.type
    explanation: str = ""  # an event's gen_ai.evaluation.explanation


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddingRow:
    sample_id: uuid.UUID
    ts: datetime
    service: str
    model: str
    field: str
    vector: list[float]


@dataclass(frozen=True, slots=True, kw_only=True)
class FlagRow:
    """One entry of the review queue: a watcher's crossed threshold (with its sample) or a
    detector's alert (without). Verdicts live in `reviews`."""

    flag_id: uuid.UUID
    sample_id: uuid.UUID | None
    ts: datetime
    service: str
    source: str
    reason: str
    label: str
    field: str  # prompt, completion, pair; '' for detector alerts
    score: float


FLAG_NAMESPACE = uuid.UUID("5d0f1a52-8c1e-4a55-b0f8-3f4f5a8e2c71")


def flag_id(sample_id: str, source: str, label: str, field: str) -> uuid.UUID:
    """Stable per (sample, source, label, field): re-scoring never queues a sample twice."""
    return uuid.uuid5(FLAG_NAMESPACE, f"{sample_id}:{source}:{label}:{field}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewRow:
    """One reviewer's verdict on one flag; the latest per flag wins."""

    flag_id: uuid.UUID
    sample_id: uuid.UUID | None
    verdict: str
    label: str
    reviewer: str
    note: str
    correction: str = ""  # the answer the model should have given (a confirmed flag's)
    ts: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorRunRow:
    run_id: uuid.UUID
    job: str
    detector: str
    scope: str
    window_start: datetime
    window_end: datetime
    reference_start: datetime
    reference_end: datetime
    statistic: float | None
    p_value: float | None
    threshold: float
    effect_size: float | None
    alert: bool
    n_reference: int
    n_current: int
    details: str  # JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceRow:
    """One model's price in US dollars per million tokens (agent/cost/prices.py).
    `cached_input` is the price cached input tokens are charged at: the input price where the
    provider lists none (`cached_listed` false)."""

    model: str
    provider: str
    input: float
    cached_input: float
    cached_listed: bool
    output: float
    checked: date | None
    origin: str  # "package" or "config"


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationRow:
    version: int
    name: str


@dataclass(frozen=True)
class Table(Generic[Row]):
    """A table's name, its row model and what the migrations build around it: the
    ReplacingMergeTree version column and the column retention (TTL) counts from."""

    name: str
    model: type[Row]
    version: str | None  # None: ReplacingMergeTree without a version column
    ttl: str | None = "ts"  # None: kept whatever the retention
    server: tuple[str, ...] = ()  # filled by the server, never written
    columns: tuple[str, ...] = dataclasses.field(init=False)  # what writers write, in order

    def __post_init__(self) -> None:
        model: type[Any] = self.model
        names = (tuple(model.model_fields) if issubclass(model, BaseModel)
                 else tuple(f.name for f in dataclasses.fields(model)))
        object.__setattr__(self, "columns", names)

    def tuples(self, rows: Iterable[Row]) -> list[tuple[Any, ...]]:
        """The rows as value tuples in `columns` order, for an insert naming those columns."""
        values = attrgetter(*self.columns)
        return [values(row) for row in rows]


# computed by the engine: price_model and cost_usd from the price table (migration 0009),
# ttft_ms and output_tokens_per_s (0010) and response_id (0011) from the attributes
SAMPLES = Table("samples", Sample, "ingested_at",
                server=("ingested_at", "price_model", "cost_usd", "ttft_ms",
                        "output_tokens_per_s", "response_id"))
SPANS = Table("spans", SpanRecord, "ingested_at", server=("ingested_at",))
USER_FEEDBACK = Table("user_feedback", Feedback, "ingested_at", server=("ingested_at",))
SCORES = Table("scores", ScoreRow, "scored_at", server=("scored_at",))
EMBEDDINGS = Table("embeddings", EmbeddingRow, "created_at", server=("created_at",))
FLAGS = Table("flags", FlagRow, "updated_at", server=("created_at", "updated_at"))
DETECTOR_RUNS = Table("detector_runs", DetectorRunRow, "ran_at", ttl="window_end",
                      server=("ran_at",))
REVIEWS = Table("reviews", ReviewRow, "ts")
PRICES = Table("prices", PriceRow, "updated_at", ttl=None, server=("updated_at",))
# created by migrate.py itself, before any migration
SCHEMA_MIGRATIONS = Table("schema_migrations", MigrationRow, None, ttl=None,
                          server=("applied_at",))

TABLES: tuple[Table[Any], ...] = (SAMPLES, SPANS, USER_FEEDBACK, SCORES, EMBEDDINGS, FLAGS,
                                  DETECTOR_RUNS, REVIEWS, PRICES, SCHEMA_MIGRATIONS)
