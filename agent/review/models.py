"""What crosses the review boundary (CLI, HTTP API, store): queries, flags with their verdicts,
review requests, export records. The same models travel as JSON through the owner's API and
come straight from the store when a command opens it itself."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from watchkeeper.collectors.normalise import Sample

Verdict = Literal["confirmed", "rejected"]
Status = Literal["open", "confirmed", "rejected", "all"]
MAX_LIMIT = 10_000


class FlagQuery(BaseModel):
    """Which flags: by source (e.g. "watcher:toxic"), review status, and the flagged sample's
    time."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = None
    status: Status = "open"
    since: datetime | None = None
    limit: int = Field(50, ge=1, le=MAX_LIMIT)


class RecordQuery(FlagQuery):
    """A page of export records, in flag_id order: those after `after` (the previous page's
    `next`)."""

    status: Status = "confirmed"
    limit: int = Field(500, ge=1, le=MAX_LIMIT)
    after: uuid.UUID | None = None


class Flag(BaseModel):
    flag_id: uuid.UUID
    sample_id: uuid.UUID | None
    ts: datetime
    service: str
    source: str
    label: str
    field: str
    score: float
    reason: str


class Review(BaseModel):
    """The latest verdict on a flag."""

    verdict: Verdict
    reviewer: str
    note: str
    correction: str = ""
    ts: datetime


class Score(BaseModel):
    watcher: str
    label: str
    field: str
    score: float


class FlagView(BaseModel):
    """One row of `review list`: the flag, its verdict, excerpts of the sample, its scores."""

    flag: Flag
    review: Review | None
    prompt: str
    completion: str
    scores: list[Score]

    @property
    def status(self) -> str:
        return self.review.verdict if self.review else "open"


class FlagList(BaseModel):
    flags: list[FlagView]


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flag_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_LIMIT)
    verdict: Verdict
    reviewer: str = Field(min_length=1, max_length=200)
    note: str = Field("", max_length=10_000)
    correction: str = Field("", max_length=100_000,
                            description="the answer the model should have given")

    @model_validator(mode="after")
    def _correction(self) -> ReviewRequest:
        if self.correction and self.verdict != "confirmed":
            raise ValueError("a correction goes with a confirmed flag (the flagged answer was "
                             "wrong; this is the right one)")
        return self


class ReviewResult(BaseModel):
    reviewed: list[uuid.UUID]
    verdict: Verdict
    reviewer: str
    ts: datetime


class Record(BaseModel):
    """A flag with its verdict and the whole sample: one line of an export."""

    flag: Flag
    review: Review | None
    sample: Sample

    @property
    def status(self) -> str:
        return self.review.verdict if self.review else "open"

    def text(self) -> str:
        """The text the flag is about: the prompt, or the completion (also for pair flags,
        which judge the completion against its prompt)."""
        return self.sample.prompt_text if self.flag.field == "prompt" else \
            self.sample.completion_text


class RecordPage(BaseModel):
    records: list[Record]
    next: uuid.UUID | None = Field(None, description="`after` for the next page; None at the end")
    missing_samples: int = Field(0, description="flags on this page whose sample has expired")
