"""The wk.flagged message: a sample the watchers flagged, with every threshold it crossed.

wk.flagged is there for tools outside Watchkeeper that act on flagged samples as they happen
(a labelling tool, a webhook or chat bridge, a ticketing hook), and for the lane of a judge in
a cascade (agent/watch/lanes.py); the review queue itself is the `flags` table.
docs/architecture.md describes the contract; in short:

- one message per flagged sample per scoring pass, published by the watch service after the
  flags are stored and before the offsets of wk.samples are committed; keyed by the sample's
  trace id (so a trace's samples share a partition, as on wk.spans and wk.samples);
- the value is one UTF-8 JSON object, `FlaggedSample`: `version`, the `sample` as ingest
  normalised it (the `Sample` of wk.samples) and its `flags`, each with the `flag_id` that
  the review queue knows it by (`watchkeeper review confirm FLAG_ID`, `POST /api/reviews`);
- delivery is at least once: a pass that is replayed publishes again, with the same flag ids;
- within a version, fields are only added, never removed or given another meaning, so a
  consumer ignores fields it does not know (these models do); anything else bumps `version`.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from watchkeeper.collectors.normalise import Sample

VERSION: Literal[1] = 1


class Flag(BaseModel):
    """One threshold a watcher's score crossed: a row of the review queue (`flags`)."""

    model_config = ConfigDict(extra="ignore")

    flag_id: uuid.UUID = Field(description="the review queue's id for this flag; stable per "
                                           "(sample, source, label, field)")
    source: str = Field(description="who flagged it: watcher:<name>")
    label: str = Field(description="the watcher's label whose score crossed its threshold")
    field: str = Field(description="what was scored: prompt, completion, ...")
    score: float
    reason: str = Field(description="for people: '<label> <score> >= <threshold> on <field>'")


class FlaggedSample(BaseModel):
    """The value of a wk.flagged message."""

    model_config = ConfigDict(extra="ignore")

    version: Literal[1] = VERSION
    sample: Sample
    flags: list[Flag] = Field(min_length=1)

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, value: bytes | str) -> FlaggedSample:
        return cls.model_validate_json(value)
