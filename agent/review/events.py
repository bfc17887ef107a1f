"""Received evaluation events as labelled texts, for `train-watcher --from-events NAME`: the
text of each sample an application or another evaluator judged under that evaluation name
(`gen_ai.evaluation.result` records stored in `scores` with source "event",
docs/evaluations.md), 1 where its score reaches the threshold, 0 below.

How they weigh against human verdicts: an event is another evaluator's opinion, a review a
person's. A sample that has a reviewed flag among the training data keeps only the
reviewer's label (its event is dropped), and the events are a source of their own, balanced
against the reviews and the files like any other (sources weigh by the square root of their
rows, agent/watch/training.py), so a flood of events cannot drown a few hundred verdicts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from watchkeeper.agent.config import Settings
from watchkeeper.agent.evaluations.events import EVENT_SOURCE
from watchkeeper.agent.query import run_query

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$")
EventField = Literal["completion", "prompt"]


class EventLabelError(ValueError):
    """The evaluation name or threshold cannot select labels: says why."""


@dataclass
class EventLabels:
    evaluation: str
    threshold: float
    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    dropped_for_reviews: int = 0

    def describe(self) -> dict[str, Any]:
        return {"source": "events", "evaluation": self.evaluation, "threshold": self.threshold,
                "rows": len(self.labels), "positives": sum(self.labels),
                "dropped_for_reviews": self.dropped_for_reviews}


def event_labels(settings: Settings, evaluation: str, *, threshold: float | None = None,
                 text_field: EventField = "completion", reviewed: frozenset[str] = frozenset(),
                 api: str | None = None, token: str | None = None) -> EventLabels:
    """The texts judged under `evaluation`, labelled by `threshold` (default: the
    `evaluations.receive.thresholds` entry of that name), without the texts in `reviewed`."""
    if not NAME.match(evaluation):
        raise EventLabelError(f"--from-events {evaluation!r}: an evaluation name (letters, "
                              "digits and ._:/-)")
    cut = threshold if threshold is not None else \
        settings.evaluations.receive.thresholds.get(evaluation)
    if cut is None:
        raise EventLabelError(f"--from-events {evaluation}: no threshold; give "
                              "--event-threshold or set evaluations.receive.thresholds")
    column = f"{text_field}_text"
    db = settings.store.database
    # the name is held to NAME above: a plain literal; the session is read-only besides
    sql = (f"SELECT s.{column} AS text, max(c.score) AS score FROM {db}.scores AS c "
           f"INNER JOIN {db}.samples AS s USING sample_id WHERE c.source = '{EVENT_SOURCE}' "
           f"AND c.label = '{evaluation}' AND c.error = '' AND s.{column} != '' "
           "GROUP BY c.sample_id, text ORDER BY text")
    _, rows = run_query(settings, sql, api=api, token=token)
    found = EventLabels(evaluation, float(cut))
    for text, score in rows:
        if text in reviewed:
            found.dropped_for_reviews += 1
            continue
        found.texts.append(str(text))
        found.labels.append(int(float(score) >= cut))
    return found
