"""The review queue on the store itself: flags with their latest verdicts, verdicts written,
flagged samples read for export. Only the process that owns the store runs this (the API
serves it to the others); every value reaches SQL as a bound parameter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from watchkeeper.agent.evaluations.emitter import EvaluationEmitter
from watchkeeper.agent.evaluations.events import from_review
from watchkeeper.agent.review.models import (
    Flag,
    FlagList,
    FlagQuery,
    FlagView,
    Record,
    RecordPage,
    RecordQuery,
    Review,
    ReviewRequest,
    ReviewResult,
    Score,
)
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.tables import FLAGS, REVIEWS, SAMPLES, SCORES, ReviewRow
from watchkeeper.collectors.normalise import Sample

FLAG_FIELDS = tuple(Flag.model_fields)
EXCERPT_CHARS = 500


class UnknownFlags(LookupError):
    """Some flag ids of a review request are not in the queue; nothing was written."""


class StoreReviews:
    def __init__(self, store: Store, emitter: EvaluationEmitter | None = None) -> None:
        self.store = store
        self.db = store.database
        self.emitter = emitter  # verdicts also go out as evaluation events, once stored

    def flags(self, query: FlagQuery) -> FlagList:
        """Newest flags first, with excerpts of their samples and every score of them."""
        rows = self._flags(query, order="f.ts DESC, f.flag_id")
        ids = [r["sample_id"] for r in rows if r["sample_id"] is not None]
        texts = self._samples(ids, rows, {
            "prompt": f"leftUTF8(prompt_text, {EXCERPT_CHARS})",
            "completion": f"leftUTF8(completion_text, {EXCERPT_CHARS})"})
        scores = self._scores(ids, rows)
        views = []
        for row in rows:
            text = texts.get(row["sample_id"], {})
            views.append(FlagView(flag=_flag(row), review=_review(row),
                                  prompt=text.get("prompt", ""),
                                  completion=text.get("completion", ""),
                                  scores=scores.get(row["sample_id"], [])))
        return FlagList(flags=views)

    def review(self, request: ReviewRequest) -> ReviewResult:
        """Record one verdict on each flag; all ids must exist, or nothing is written."""
        ids = list(dict.fromkeys(request.flag_ids))
        found = {row["flag_id"]: row for row in self.store.query(
            "SELECT flag_id, any(sample_id) AS sample_id, any(label) AS label "
            f"FROM {self.db}.{FLAGS.name} WHERE flag_id IN {{ids:Array(UUID)}} GROUP BY flag_id",
            {"ids": ids}).records()}
        unknown = [str(i) for i in ids if i not in found]
        if unknown:
            raise UnknownFlags(f"no such flag: {', '.join(unknown)}")
        ts = datetime.now(UTC)
        rows = [ReviewRow(flag_id=i, sample_id=found[i]["sample_id"], verdict=request.verdict,
                          label=found[i]["label"], reviewer=request.reviewer,
                          note=request.note, correction=request.correction, ts=ts)
                for i in ids]
        self.store.insert_rows(REVIEWS, rows)
        if self.emitter is not None:
            self._emit(rows)
        return ReviewResult(reviewed=ids, verdict=request.verdict, reviewer=request.reviewer,
                            ts=ts)

    def _emit(self, rows: list[ReviewRow]) -> None:
        """Verdicts on flags of samples (not detector alerts) as evaluation events of the
        samples' spans."""
        assert self.emitter is not None
        ids = [r.sample_id for r in rows if r.sample_id is not None]
        spans = {row["sample_id"]: (row["trace_id"], row["span_id"]) for row in self.store.query(
            f"SELECT sample_id, any(trace_id) AS trace_id, any(span_id) AS span_id "
            f"FROM {self.db}.{SAMPLES.name} WHERE sample_id IN {{ids:Array(UUID)}} "
            "GROUP BY sample_id", {"ids": ids}).records()} if ids else {}
        self.emitter.emit([from_review(row, *spans[row.sample_id]) for row in rows
                           if row.sample_id in spans], "review")

    def records(self, query: RecordQuery) -> RecordPage:
        """One page of flags on samples, in flag_id order, with the whole sample."""
        rows = self._flags(query, order="f.flag_id", after=query.after, samples_only=True)
        samples = self._samples([r["sample_id"] for r in rows], rows,
                                {c: c for c in SAMPLES.columns})
        records = [Record(flag=_flag(r), review=_review(r),
                          sample=_sample(samples[r["sample_id"]]))
                   for r in rows if r["sample_id"] in samples]
        full = len(rows) == query.limit
        return RecordPage(records=records, next=rows[-1]["flag_id"] if full else None,
                          missing_samples=len(rows) - len(records))

    def _flags(self, query: FlagQuery, *, order: str, after: uuid.UUID | None = None,
               samples_only: bool = False) -> list[dict[str, Any]]:
        where = ["1"]
        parameters: dict[str, Any] = {"limit": query.limit}
        if query.source:
            where.append("f.source = {source:String}")
            parameters["source"] = query.source
        if query.since is not None:
            where.append("f.ts >= {since:DateTime64(6)}")
            parameters["since"] = query.since
        if query.status != "all":
            where.append("review_status = {status:String}")
            parameters["status"] = query.status
        if samples_only:
            where.append("f.sample_id IS NOT NULL")
        if after is not None:
            where.append("f.flag_id > {after:UUID}")
            parameters["after"] = after
        # flags written before the `field` column name it at the end of their reason
        result = self.store.query(
            "SELECT f.flag_id AS flag_id, f.sample_id AS sample_id, f.ts AS ts, "
            "f.service AS service, f.source AS source, f.label AS label, "
            "if(f.field != '', f.field, extract(f.reason, ' on ([a-z]+)$')) AS field, "
            "f.score AS score, f.reason AS reason, "
            "coalesce(nullIf(r.last_verdict, ''), 'open') AS review_status, "
            "r.last_verdict AS verdict, r.last_reviewer AS reviewer, r.last_note AS note, "
            "r.last_correction AS correction, r.reviewed_at AS reviewed_at "
            f"FROM {self.db}.{FLAGS.name} AS f FINAL LEFT JOIN (SELECT flag_id, "
            "argMax(verdict, ts) AS last_verdict, argMax(reviewer, ts) AS last_reviewer, "
            "argMax(note, ts) AS last_note, argMax(correction, ts) AS last_correction, "
            "max(ts) AS reviewed_at "
            f"FROM {self.db}.{REVIEWS.name} GROUP BY flag_id"
            f") AS r ON r.flag_id = f.flag_id WHERE {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT {{limit:UInt32}}", parameters)
        return result.records()

    def _samples(self, ids: Sequence[Any], flags: list[dict[str, Any]],
                 columns: dict[str, str]) -> dict[Any, dict[str, Any]]:
        """Columns of the samples with these ids (the flags' time span prunes partitions)."""
        if not ids:
            return {}
        select = ", ".join(f"{expr} AS {name}" for name, expr in columns.items())
        result = self.store.query(
            f"SELECT sample_id AS _id, {select} FROM {self.db}.{SAMPLES.name} "
            "WHERE sample_id IN {ids:Array(UUID)} AND ts BETWEEN {lo:DateTime64(6)} "
            "AND {hi:DateTime64(6)} LIMIT 1 BY sample_id", _span(ids, flags))
        return {row.pop("_id"): row for row in result.records()}

    def _scores(self, ids: Sequence[Any], flags: list[dict[str, Any]]
                ) -> dict[Any, list[Score]]:
        if not ids:
            return {}
        result = self.store.query(
            "SELECT sample_id, watcher, label, field, max(score) AS score "
            f"FROM {self.db}.{SCORES.name} "
            "WHERE sample_id IN {ids:Array(UUID)} AND ts BETWEEN {lo:DateTime64(6)} "
            "AND {hi:DateTime64(6)} AND error = '' "
            "GROUP BY sample_id, watcher, label, field ORDER BY score DESC", _span(ids, flags))
        scores: dict[Any, list[Score]] = {}
        for row in result.records():
            scores.setdefault(row.pop("sample_id"), []).append(Score(**row))
        return scores


def _span(ids: Sequence[Any], flags: list[dict[str, Any]]) -> dict[str, Any]:
    """A flag's ts is its sample's: bounds for partition pruning on samples and scores."""
    times = [f["ts"] for f in flags]
    return {"ids": list(dict.fromkeys(ids)), "lo": min(times), "hi": max(times)}


def _flag(row: dict[str, Any]) -> Flag:
    return Flag(**{name: row[name] for name in FLAG_FIELDS})


def _review(row: dict[str, Any]) -> Review | None:
    if not row["verdict"]:  # no review: the LEFT JOIN's defaults
        return None
    return Review(verdict=row["verdict"], reviewer=row["reviewer"], note=row["note"],
                  correction=row["correction"], ts=row["reviewed_at"])


def _sample(row: dict[str, Any]) -> Sample:
    return Sample.model_validate({
        **row, "input_messages": json.loads(row["input_messages"] or "[]"),
        "output_messages": json.loads(row["output_messages"] or "[]")})
