"""The one result every drift and bias detector returns.

It lands as a row in ClickHouse `detector_runs`, prints in the CLI and plots in the report, so it
is flat, typed and JSON-friendly: numbers are plain floats (never NaN: "no value" is None) and
`details` holds only JSON types, whatever numpy types a detector put in it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from watchkeeper.detectors.stats import Correction, adjust_p_values

TOO_FEW = "too few samples"
# details key set when a change is significant but below the detector's minimum effect: such
# a result never alerts, also after a multiple-testing correction.
NEGLIGIBLE = "negligible"


def jsonable(value: Any) -> Any:
    """numpy scalars and arrays, tuples and sets to plain JSON types; NaN and inf to None."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, Sequence | set | frozenset) and not isinstance(value, str | bytes):
        return [jsonable(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class DetectorResult(BaseModel):
    """One run of one detector on one window (or one group, or one swap pair).

    `threshold` is the significance level the p-value was held to; `alert` already folds in
    every rule of the detector (significance after correction, minimum effect, sample sizes).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: str
    statistic: float | None = Field(description="the test statistic (None when not run)")
    p_value: float | None = Field(description="after any multiple-testing correction")
    threshold: float = Field(description="alpha: alert when p_value < threshold (and effect)")
    effect_size: float | None = Field(description="a magnitude comparable across runs")
    alert: bool
    n_reference: int
    n_current: int
    details: dict[str, Any] = Field(default_factory=dict)

    @field_validator("statistic", "p_value", "effect_size", mode="before")
    @classmethod
    def _no_nan(cls, value: Any) -> float | None:
        return _finite(value)

    @field_validator("details", mode="before")
    @classmethod
    def _json_details(cls, value: Any) -> Any:
        return jsonable(value) if isinstance(value, Mapping) else value

    @classmethod
    def skipped(cls, detector: str, reason: str, n_reference: int, n_current: int,
                threshold: float, **details: Any) -> DetectorResult:
        """A run that could not test (too few samples, an empty window): no alert, the reason
        in details, so a schedule records it instead of failing."""
        return cls(detector=detector, statistic=None, p_value=None, threshold=threshold,
                   effect_size=None, alert=False, n_reference=n_reference,
                   n_current=n_current, details={"reason": reason, **details})

    @property
    def ran(self) -> bool:
        """False for a skipped run (details.reason says why)."""
        return self.p_value is not None

    def summary(self) -> str:
        """One line for the CLI."""
        def num(x: float | None) -> str:
            return "-" if x is None else f"{x:.4g}"

        head = f"{self.detector}: {'ALERT' if self.alert else 'ok'}"
        if not self.ran:
            return f"{head} (not run: {self.details.get('reason', 'unknown')}; " \
                   f"n={self.n_reference}/{self.n_current})"
        return (f"{head} statistic={num(self.statistic)} p={num(self.p_value)} "
                f"alpha={self.threshold:g} effect={num(self.effect_size)} "
                f"n={self.n_reference}/{self.n_current}")

    def with_p_value(self, p_value: float, correction: str) -> DetectorResult:
        """This result judged on a corrected p-value (the raw one stays in details)."""
        return self.model_copy(update={
            "p_value": float(p_value),
            "alert": bool(p_value < self.threshold and not self.details.get(NEGLIGIBLE)),
            "details": {**self.details, "p_value_raw": self.p_value, "correction": correction}})


def correct(results: Sequence[DetectorResult], method: Correction) -> list[DetectorResult]:
    """Adjust the p-values of a family of results (many signals, many groups) so that the
    chance of any false alert when nothing changed stays at alpha. Skipped results pass
    through and do not count in the family."""
    ran = [i for i, r in enumerate(results) if r.ran]
    out = list(results)
    if method == "none" or not ran:
        return out
    adjusted = adjust_p_values([float(results[i].p_value or 1.0) for i in ran], method)
    for i, p in zip(ran, adjusted, strict=True):
        out[i] = results[i].with_p_value(float(p), method)
    return out
