"""Which samples a watcher scores: a policy per watcher (`watch.watchers[].sampling`), so that
an expensive watcher (an LLM judge) sees the share of the traffic a budget can afford.

- `rate`: the share of samples scored, decided by a hash of the watcher's name and the
  sample's id, not a random draw: a replayed sample gets the decision it got the first time,
  in any process, and two watchers at the same rate see different samples.
- `services`, `environments`, `models`: shell patterns (`chat-*`); a sample must match every
  list that is given (a model matches by its request or its response model).
- `after`: watchers earlier in the config; a sample one of them flagged is always scored,
  whatever the rate and the lists: a cascade from cheap watchers to an expensive one. With
  `only_after`, nothing else is.
- `calls_per_minute`, `tokens_per_day`: the budget, enforced by the watch service
  (agent/watch/budget.py) on what the policy chose, the cascade's samples first.
- `max_delay_s`: for a watcher that calls out and so scores in lanes of its own
  (agent/watch/lanes.py), the bound on its backlog: what its lane reaches later than this
  after the call is skipped, so after an outage it judges current traffic, not an old queue.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Collection
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Choice = Literal["cascade", "chosen", "policy", "sampled"]
SCORED: frozenset[Choice] = frozenset({"cascade", "chosen"})


class SamplingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: float = Field(1.0, ge=0, le=1, description="share of samples scored")
    services: list[str] = Field(default_factory=list, description="only these (patterns)")
    environments: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list, description="watchers whose flags always "
                             "send a sample here (a cascade)")
    only_after: bool = Field(False, description="score only what `after` watchers flagged")
    calls_per_minute: int | None = Field(None, ge=1, description="model calls per minute")
    tokens_per_day: int | None = Field(None, ge=1, description="estimated tokens per UTC day")
    max_delay_s: float | None = Field(
        900, gt=0, description="a watcher in lanes of its own (an LLM judge) skips a sample "
                               "its lane reaches this long after the call (reason backlog), so "
                               "a slow or down endpoint's backlog stays bounded; null: never")

    @model_validator(mode="after")
    def _cascade(self) -> SamplingPolicy:
        if self.only_after and not self.after:
            raise ValueError("only_after needs `after`: the watchers whose flags it scores")
        return self

    @property
    def budgeted(self) -> bool:
        return self.calls_per_minute is not None or self.tokens_per_day is not None


def _matches(patterns: list[str], *values: str) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(v, p) for p in patterns for v in values if v)


def in_sample(watcher: str, sample_id: str, rate: float) -> bool:
    """The rate's decision for one sample: the same for the same watcher and sample, always."""
    if rate >= 1:
        return True
    digest = hashlib.sha256(f"{watcher}\x1f{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < rate * 2**64


def choose(policy: SamplingPolicy, watcher: str, *, sample_id: str, service: str,
           environment: str, models: tuple[str, str], flagged_by: Collection[str]) -> Choice:
    """Whether a watcher scores a sample ("cascade", "chosen") or why not ("policy": the
    lists or only_after leave it out; "sampled": the rate did)."""
    if any(name in flagged_by for name in policy.after):
        return "cascade"
    if policy.only_after or not (_matches(policy.services, service)
                                 and _matches(policy.environments, environment)
                                 and _matches(policy.models, *models)):
        return "policy"
    return "chosen" if in_sample(watcher, sample_id, policy.rate) else "sampled"
