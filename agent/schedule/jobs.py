"""Detector jobs as the config describes them: what to test, over which window against which
reference, per which scope, and when."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '1h', '7d', '2w'."""
    match = DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 15m, 1h or 7d")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


class SignalSpec(BaseModel):
    """A per-sample scalar to test: a column of samples, or a watcher's score for one label."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["continuous", "rate", "categorical"] = "continuous"
    test: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


ScopeColumn = Literal["service", "request_model", "environment"]


def _by_service() -> list[ScopeColumn]:
    return ["service"]


DEFAULT_SIGNALS = [
    SignalSpec(name="prompt_length"), SignalSpec(name="completion_length"),
    SignalSpec(name="input_tokens"), SignalSpec(name="output_tokens"),
    SignalSpec(name="latency_ms"), SignalSpec(name="error", kind="rate"),
    SignalSpec(name="finish_reason", kind="categorical"),
]


class BiasMetric(BaseModel):
    """A per-sample value compared across the groups texts mention: a column of samples
    (`completion_length`, `error`, ...) or one watcher's score for one label
    (`quality:refusal`; the higher score where a watcher scores both prompt and completion).
    `rate` metrics are events (value > 0) tested with Fisher's exact test."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["continuous", "rate"] = "continuous"

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        from watchkeeper.agent.schedule.data import SAMPLE_METRICS

        if ":" not in value and value not in SAMPLE_METRICS:
            raise ValueError(f"{value!r} is neither a sample metric ({', '.join(SAMPLE_METRICS)})"
                             " nor a watcher score written watcher:label")
        return value


class ProbeSpec(BaseModel):
    """Counterfactual probes of watchers from `watch.watchers`: texts of the window that mention
    a group, with the group's words swapped, scored in both versions."""

    model_config = ConfigDict(extra="forbid")

    watchers: list[str] = Field(default_factory=list, description="'name' (every label) or "
                                                                  "'name:label'")
    max_texts: int = Field(200, gt=0, description="texts sampled per swap pair")
    min_texts: int = Field(20, gt=0, description="fewer texts: the pair is skipped")
    tolerance: float = Field(0.05, ge=0, description="a score change above it counts as moved")
    min_effect: float = Field(0.01, ge=0, description="smallest mean change worth an alert")


def _default_metrics() -> list[BiasMetric]:
    return [BiasMetric(name="completion_length"),
            BiasMetric(name="quality:refusal", kind="rate")]


class BiasSpec(BaseModel):
    """What a `kind: bias` job analyses in its window (groups are compared within it)."""

    model_config = ConfigDict(extra="forbid")

    text: Literal["prompt", "completion", "both"] = Field(
        "both", description="the texts tagged with the lexicon")
    axes: list[str] | None = Field(None, description="default: every axis of the lexicon")
    lexicon: dict[str, Any] = Field(default_factory=dict, description="axes added to or "
                                    "replacing the built-in ones ({axes: {name: ...}})")
    metrics: list[BiasMetric] = Field(default_factory=_default_metrics)
    versus: Literal["rest", "reference"] = Field(
        "rest", description="each group against the rest, or against the axis's reference")
    min_group: int = Field(30, gt=0, description="texts a group needs to be tested")
    probes: ProbeSpec = Field(default_factory=ProbeSpec)


class DetectorJob(BaseModel):
    """One scheduled detector. `kind: embedding` runs one embedding detector (mmd, classifier,
    pca_ks) on a watcher's vectors; `kind: signals` tests every signal per scope with one
    correction across all of them; `kind: bias` tests group disparities and probes watchers
    (`bias`) within the window."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    kind: Literal["embedding", "signals", "bias"] = "embedding"
    detector: str = "mmd"
    embedding: str = Field("minilm", description="the embedding watcher whose vectors to test")
    field: Literal["prompt", "completion"] = "prompt"
    scope: list[ScopeColumn] = Field(default_factory=_by_service)
    window: str = "1h"
    reference: str = Field("previous", description="'previous' (the window before), a "
                                                   "duration before the window ('24h'), or "
                                                   "a pinned 'START/END' (ISO times)")
    signals: list[SignalSpec] = Field(default_factory=lambda: list(DEFAULT_SIGNALS))
    bias: BiasSpec = Field(default_factory=BiasSpec)
    every: str | None = Field("15m", description="interval between runs")
    cron: str | None = Field(None, description="crontab instead of an interval")
    params: dict[str, Any] = Field(default_factory=dict, description="detector parameters")
    max_samples: int = Field(5000, gt=0, description="rows read per window, at random")

    @field_validator("window", "every")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("reference")
    @classmethod
    def _reference(cls, value: str) -> str:
        if value != "previous" and "/" not in value:
            parse_duration(value)
        elif "/" in value:
            start, end = value.split("/", 1)
            if datetime.fromisoformat(start) >= datetime.fromisoformat(end):
                raise ValueError("a pinned reference must start before it ends")
        return value

    @model_validator(mode="after")
    def _when(self) -> DetectorJob:
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            CronTrigger.from_crontab(self.cron)  # fails here, naming the field, if malformed
            self.every = None
        return self

    def windows(self, now: datetime) -> tuple[tuple[datetime, datetime],
                                              tuple[datetime, datetime]]:
        """(current, reference) as [start, end) pairs ending at `now`."""
        length = parse_duration(self.window)
        current = (now - length, now)
        if self.reference == "previous":
            return current, (current[0] - length, current[0])
        if "/" in self.reference:
            start, end = self.reference.split("/", 1)
            return current, (datetime.fromisoformat(start), datetime.fromisoformat(end))
        return current, (current[0] - parse_duration(self.reference), current[0])
