"""The review queue as the commands see it: the same three calls whether they go through the
API of the agent that owns the store (GET /api/flags, POST /api/reviews, GET
/api/flags/records) or to the store directly (queue.StoreReviews) when no agent owns it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from watchkeeper.agent.access import OwnerApi, find_owner, open_store
from watchkeeper.agent.config import Settings
from watchkeeper.agent.review.models import (
    FlagList,
    FlagQuery,
    Record,
    RecordPage,
    RecordQuery,
    ReviewRequest,
    ReviewResult,
)


class Reviews(Protocol):
    def flags(self, query: FlagQuery) -> FlagList: ...

    def review(self, request: ReviewRequest) -> ReviewResult: ...

    def records(self, query: RecordQuery) -> RecordPage: ...


class ApiReviews:
    """The review queue of a running agent, through its API."""

    def __init__(self, owner: OwnerApi) -> None:
        self.owner = owner

    def flags(self, query: FlagQuery) -> FlagList:
        return FlagList.model_validate(self.owner.request(
            "GET", "/api/flags", params=query.model_dump(mode="json", exclude_none=True)))

    def review(self, request: ReviewRequest) -> ReviewResult:
        return ReviewResult.model_validate(self.owner.request(
            "POST", "/api/reviews", json=request.model_dump(mode="json")))

    def records(self, query: RecordQuery) -> RecordPage:
        return RecordPage.model_validate(self.owner.request(
            "GET", "/api/flags/records", params=query.model_dump(mode="json", exclude_none=True)))


@contextmanager
def open_reviews(settings: Settings, api: str | None = None,
                 token: str | None = None) -> Iterator[Reviews]:
    """Through the owner's API when an agent owns the store, else the store itself (an older
    store is migrated first, as `up` would, so that it gains the reviews table)."""
    owner = find_owner(settings, api, token)
    if owner is not None:
        yield ApiReviews(owner)
        return
    from watchkeeper.agent.evaluations.emitter import EvaluationEmitter
    from watchkeeper.agent.review.queue import StoreReviews
    from watchkeeper.agent.store.migrate import migrate, pending

    store = open_store(settings)
    emitter = (EvaluationEmitter(settings.evaluations.export)
               if settings.evaluations.export.endpoint else None)
    try:
        if pending(store):
            migrate(store)
        yield StoreReviews(store, emitter)
    finally:
        if emitter is not None:  # the verdicts' events go out before the command exits
            emitter.close()
        store.close()


class RecordStream:
    """Every record a query matches, page by page in flag_id order; counts the flags left out
    because their sample has expired (retention) under `missing`."""

    def __init__(self, reviews: Reviews, query: RecordQuery) -> None:
        self.reviews = reviews
        self.query = query
        self.missing = 0

    def __iter__(self) -> Iterator[Record]:
        query: RecordQuery | None = self.query
        while query is not None:
            page = self.reviews.records(query)
            self.missing += page.missing_samples
            yield from page.records
            query = query.model_copy(update={"after": page.next}) if page.next else None
