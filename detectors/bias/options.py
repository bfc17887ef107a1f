"""The options of the bias tests as a config sets them: `GroupDisparity` (a bias job's
`versus` and `min_group`), `CounterfactualProbe` (a bias job's `probes`) and `audit_pairs`
(a bias job's `probes.pairs`). The tests'
constructors take the same keywords with the same defaults (a test holds them equal); the
lexicon, the axes, alpha and the correction come from the job and the schedule.

Plain pydantic on purpose: the config imports this module without numpy or scipy.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from watchkeeper.detectors.options import Options


class DisparityOptions(Options):
    versus: Literal["rest", "reference"] = Field(
        "rest", description="each group against the rest, or against the axis's reference")
    effect: Literal["cliffs_delta", "cohens_d"] = "cliffs_delta"
    min_effect: float | None = Field(None, ge=0, description="default: 0.147 (Cliff's delta), "
                                                             "0.2 (d), 0.02 (a rate)")
    min_count: int = Field(30, ge=1, description="texts a group needs to be tested")


class CounterfactualOptions(Options):
    tolerance: float = Field(0.05, ge=0, description="a score change above it counts as moved")
    min_effect: float = Field(0.01, ge=0, description="smallest mean change worth an alert")
    max_texts: int = Field(300, ge=1, description="texts sampled per swap pair")
    min_texts: int = Field(20, ge=1, description="fewer texts: the pair is skipped")


class PairAuditOptions(Options):
    tolerance: float = Field(0.02, ge=0, description="the smallest mean score difference b - a "
                                                      "worth a flag (see detectors/bias/audit.py)")
