"""Drift of many scalar signals at once, per scope (service, model): the right test for each
signal's kind, and one correction across everything tested in a run, so that a quiet day with
fifty signals does not page anyone by chance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field, model_validator

from watchkeeper.detectors.drift.registry import KINDS, build, signal_test
from watchkeeper.detectors.options import check, raise_errors
from watchkeeper.detectors.result import TOO_FEW, DetectorResult, correct
from watchkeeper.detectors.stats import Correction

SignalKind = Literal["continuous", "rate", "categorical"]


class Signal(BaseModel):
    """One signal to watch, as the caller's config describes it. `params` are checked against
    the test's options model (drift/options.py) here, so a misspelt one fails at once."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: SignalKind = "continuous"
    test: str | None = Field(default=None, description="ks, psi or chi2; default by kind")
    params: dict[str, Any] = Field(default_factory=dict, description="detector parameters")

    @model_validator(mode="after")
    def _params(self) -> Signal:
        _, errors = check(KINDS[self.detector_name()].options, self.params, self.name,
                          ("params",))
        raise_errors(type(self).__name__, errors)
        return self

    def detector_name(self) -> str:
        return signal_test(self.name, self.kind, self.test)


def detect_scopes(reference: Mapping[str, Mapping[str, ArrayLike]],
                current: Mapping[str, Mapping[str, ArrayLike]], signals: Sequence[Signal], *,
                alpha: float = 0.05, correction: Correction = "bh",
                random_state: int | None = 0) -> dict[str, dict[str, DetectorResult]]:
    """{scope: {signal: result}} for every scope in `current`, p-values corrected across all
    scopes and signals together. A signal or scope missing on either side is skipped with a
    reason rather than failing the run."""
    flat: list[tuple[str, str, DetectorResult]] = []
    for scope, windows in current.items():
        ref = reference.get(scope, {})
        for signal in signals:
            name = signal.detector_name()
            options = KINDS[name].options.model_validate(signal.params)
            params = {"alpha": alpha, "random_state": random_state,
                      **options.model_dump(exclude_unset=True)}
            if signal.name not in windows or signal.name not in ref:
                result = DetectorResult.skipped(name, TOO_FEW, _size(ref.get(signal.name)),
                                                _size(windows.get(signal.name)), alpha,
                                                signal=signal.name, missing=True)
            else:
                detector = build(name, **params)
                result = detector.fit(ref[signal.name]).test(windows[signal.name])
                result = result.model_copy(update={"details": {
                    **result.details, "signal": signal.name, "kind": signal.kind}})
            flat.append((scope, signal.name, result))
    corrected = correct([r for _, _, r in flat], correction)
    out: dict[str, dict[str, DetectorResult]] = {}
    for (scope, signal_name, _), result in zip(flat, corrected, strict=True):
        out.setdefault(scope, {})[signal_name] = result
    return out


def _size(values: ArrayLike | None) -> int:
    return 0 if values is None else int(np.asarray(values).size)


def detect_signals(reference: Mapping[str, ArrayLike], current: Mapping[str, ArrayLike],
                 signals: Sequence[Signal], **options: Any) -> dict[str, DetectorResult]:
    """`detect_scopes` for one scope: {signal: result}."""
    return detect_scopes({"": reference}, {"": current}, signals, **options)[""]
