"""Reviewed flags as labelled texts, for `train-watcher --from-reviews`: the flagged text (the
prompt or the completion) with 1 where a reviewer confirmed the flag and 0 where one rejected
it. Open flags are left out: the watcher's own say-so would only teach it itself."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from watchkeeper.agent.review.backend import RecordStream, Reviews
from watchkeeper.agent.review.models import RecordQuery, Verdict


@dataclass
class ReviewedFlags:
    source: str
    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    flag_ids: list[str] = field(default_factory=list)
    expired: int = 0
    last_review: datetime | None = None

    @property
    def positives(self) -> int:
        return sum(self.labels)

    def describe(self) -> dict[str, Any]:
        """What meta.json records: which flags, how many of each verdict, up to when."""
        digest = hashlib.sha256("\n".join(sorted(self.flag_ids)).encode()).hexdigest()
        return {"source": "reviews", "flag_source": self.source, "rows": len(self.labels),
                "confirmed": self.positives, "rejected": len(self.labels) - self.positives,
                "expired_samples": self.expired,
                "last_review": self.last_review.isoformat() if self.last_review else None,
                "flag_ids_sha256": digest}


def reviewed_flags(reviews: Reviews, source: str) -> ReviewedFlags:
    found = ReviewedFlags(source)
    verdicts: tuple[Verdict, ...] = ("confirmed", "rejected")
    for verdict in verdicts:
        stream = RecordStream(reviews, RecordQuery(source=source, status=verdict))
        for record in stream:
            text = record.text()
            if not text.strip():
                continue
            found.texts.append(text)
            found.labels.append(int(verdict == "confirmed"))
            found.flag_ids.append(str(record.flag.flag_id))
            reviewed = record.review.ts if record.review else None
            if reviewed and (found.last_review is None or reviewed > found.last_review):
                found.last_review = reviewed
        found.expired += stream.missing
    return found
