"""Detector jobs as the config describes them (`schedule.jobs`): what to test, over which window
against which reference, per which scope, and when. Models only, no I/O, so that the config can
import them; the schedule service (agent/schedule/) reads the windows and runs the jobs.

Every job's and signal's detector parameters are checked against the detector's options model
(`detectors/drift/registry.py`) when the config loads, and the names of sample columns are
checked against the lists below (agent/schedule/data.py holds the SQL for each name). A bad
entry fails naming the job: `schedule.jobs[0] (prompt-drift): params.n_permutatons: Extra
inputs are not permitted`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)

from watchkeeper.agent.durations import parse_duration
from watchkeeper.detectors.bias.options import (
    CounterfactualOptions,
    DisparityOptions,
    PairAuditOptions,
)
from watchkeeper.detectors.drift.options import DetectorOptions
from watchkeeper.detectors.drift.registry import KINDS, names, signal_test
from watchkeeper.detectors.options import (
    as_error,
    check,
    component_error,
    raise_errors,
    renamed,
)

# Per-sample values a signals job tests, by name (data.SIGNAL_COLUMNS reads each one) ...
SIGNAL_COLUMNS = ("prompt_length", "completion_length", "input_tokens", "output_tokens",
                  "latency_ms", "error", "finish_reason")
# ... and the numbers a bias job compares across groups (data.SAMPLE_METRICS).
SAMPLE_METRICS = ("prompt_length", "completion_length", "input_tokens", "output_tokens",
                  "latency_ms", "error")


def _column_or_score(value: str, columns: tuple[str, ...], what: str) -> str:
    if ":" not in value and value not in columns:
        raise ValueError(f"{value!r} is neither a {what} ({', '.join(columns)}) nor a watcher "
                         "score written watcher:label")
    return value


class SignalSpec(BaseModel):
    """A per-sample scalar to test: a column of samples, or a watcher's score for one label.
    `params` are the test's options (ks, psi or chi2: `detectors/drift/options.py`)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["continuous", "rate", "categorical"] = "continuous"
    test: str | None = Field(None, description="ks, psi or chi2; default by kind")
    params: dict[str, Any] = Field(default_factory=dict, description="the test's options")

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return _column_or_score(value, SIGNAL_COLUMNS, "sample column")

    @model_validator(mode="after")
    def _params(self) -> SignalSpec:
        try:
            test = signal_test(self.name, self.kind, self.test)
        except ValueError as exc:
            raise as_error("SignalSpec", [component_error(self.name, ("test",), str(exc),
                                                          self.test)]) from None
        _, errors = check(KINDS[test].options, self.params, self.name, ("params",))
        raise_errors("SignalSpec", errors)
        return self

    @property
    def options(self) -> DetectorOptions:
        """`params` as the test's typed options."""
        return KINDS[signal_test(self.name, self.kind, self.test)].options.model_validate(
            self.params)


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
        return _column_or_score(value, SAMPLE_METRICS, "sample metric")


class PairsSpec(PairAuditOptions):
    """A file of minimal pairs (CSV/TSV or JSONL: two texts that differ only in the group they
    mention, and the group) that a bias job audits with each probed watcher on every run
    (`detectors/bias/audit.py`); read at each run, so a missing file is a skipped row, not a
    failed start."""

    file: Path
    a_col: str = Field("a", description="the reference group's text")
    b_col: str = Field("b", description="the same text about the group")
    group_col: str | None = Field("group", description="null: every pair in group 'all'")


class ProbeSpec(CounterfactualOptions):
    """Counterfactual probes of watchers from `watch.watchers`: texts of the window that mention
    a group, with the group's words swapped, scored in both versions, and (`pairs`) a fixed
    file of minimal pairs. The rest are `CounterfactualProbe`'s options
    (`detectors/bias/options.py`)."""

    watchers: list[str] = Field(default_factory=list, description="'name' (every label) or "
                                                                  "'name:label'")
    max_texts: int = Field(200, gt=0, description="texts sampled per swap pair")
    pairs: PairsSpec | None = Field(None, description="minimal pairs audited for each watcher")

    @model_validator(mode="after")
    def _pairs_need_watchers(self) -> ProbeSpec:
        if self.pairs is not None and not self.watchers:
            raise ValueError("pairs: name the watchers to audit in probes.watchers")
        return self


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

    def disparity(self) -> DisparityOptions:
        """`GroupDisparity`'s options: the group sizes and the comparison of this job."""
        return DisparityOptions(versus=self.versus, min_count=self.min_group)


class DetectorJob(BaseModel):
    """One scheduled detector. `kind: embedding` runs one embedding detector (mmd, classifier,
    pca_ks) on a watcher's vectors, with `params` its options; `kind: signals` tests every
    signal per scope with one correction across all of them; `kind: bias` tests group
    disparities and probes watchers (`bias`) within the window."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    kind: Literal["embedding", "signals", "bias"] = "embedding"
    detector: str = Field("mmd", description="embedding jobs: mmd, classifier or pca_ks")
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
    params: dict[str, Any] = Field(default_factory=dict, description="the embedding detector's "
                                                                     "options")
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

    @field_validator("cron")
    @classmethod
    def _crontab(cls, value: str | None) -> str | None:
        if value is not None:
            from apscheduler.triggers.cron import CronTrigger

            CronTrigger.from_crontab(value)  # fails here, naming the field, if malformed
        return value

    @model_validator(mode="after")
    def _when(self) -> DetectorJob:
        if self.cron is not None:
            self.every = None
        return self

    @model_validator(mode="after")
    def _detector(self) -> DetectorJob:
        """An embedding job's detector takes embeddings and its params are its options; the
        other kinds take none (a signal has its own)."""
        if self.kind != "embedding":
            if self.params:
                raise_errors("DetectorJob", [component_error(
                    self.name, ("params",), f"only embedding jobs take params (a {self.kind} "
                    "job's tests are set per signal or in bias)", self.params)])
            return self
        if self.detector not in names("embedding"):
            raise_errors("DetectorJob", [component_error(
                self.name, ("detector",), f"{self.detector!r} is not an embedding detector "
                f"({', '.join(names('embedding'))})", self.detector)])
        _, errors = check(KINDS[self.detector].options, self.params, self.name, ("params",))
        raise_errors("DetectorJob", errors)
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _named(cls, data: Any, handler: ModelWrapValidatorHandler[DetectorJob]) -> DetectorJob:
        """Every error of a job names it: `schedule.jobs[0] (nightly): window: ...` (defined
        after the other validators, so that it wraps them all)."""
        try:
            return handler(data)
        except ValidationError as exc:
            name = data.get("name") if isinstance(data, dict) else getattr(data, "name", None)
            raise as_error(cls.__name__, renamed(exc, str(name or "unnamed job"))) from None

    @property
    def detector_options(self) -> DetectorOptions:
        """An embedding job's `params` as its detector's typed options."""
        return KINDS[self.detector].options.model_validate(self.params)

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
