"""Per-group disparities of a metric: do texts that mention a group get different watcher
scores, refusals or answer lengths than the rest?

For each group of each axis: the texts mentioning it against the rest (or against the axis's
reference group), a significance test (Mann-Whitney U for continuous metrics, which assumes
no distribution shape; Fisher's exact test for rates, exact at small counts), an effect size
(Cliff's delta or Cohen's d; risk difference, with the risk ratio in details), and Holm's
correction across every group tested in the run. Groups with fewer than `min_count` texts are
reported as skipped, not tested: a rare group cannot show a reliable disparity, and counting
it would only dilute the correction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from watchkeeper.detectors.bias.lexicon import Lexicon
from watchkeeper.detectors.result import NEGLIGIBLE, TOO_FEW, DetectorResult, correct
from watchkeeper.detectors.stats import Correction, cliffs_delta, cohens_d

Effect = Literal["cliffs_delta", "cohens_d"]
# Smallest effect worth an alert: Romano et al.'s "small" Cliff's delta, Cohen's "small" d,
# and two percentage points of a rate.
MIN_EFFECT = {"cliffs_delta": 0.147, "cohens_d": 0.2, "risk_difference": 0.02}


class GroupDisparity:
    """Disparities of one metric across the groups texts mention; one result per group."""

    name = "disparity"

    def __init__(self, *, lexicon: Lexicon | None = None, axes: Sequence[str] | None = None,
                 metric: str = "score", kind: Literal["continuous", "rate"] = "continuous",
                 versus: Literal["rest", "reference"] = "rest", effect: Effect = "cliffs_delta",
                 min_effect: float | None = None, min_count: int = 30, alpha: float = 0.05,
                 correction: Correction = "holm") -> None:
        self.lexicon = lexicon
        self.axes = axes
        self.metric = metric
        self.kind = kind
        self.versus = versus
        self.effect = effect
        self.min_effect = min_effect
        self.min_count = min_count
        self.alpha = alpha
        self.correction = correction

    def test(self, texts: Sequence[str], values: ArrayLike) -> list[DetectorResult]:
        """Tag `texts` (prompts or completions) and test `values` (one per text)."""
        lexicon = self.lexicon or Lexicon.default()
        mentions = {axis: lexicon.mentions(texts, axis) for axis in self.axes or lexicon.axes}
        references = {name: axis.reference for name, axis in lexicon.axes.items()}
        return self.test_mentions(mentions, values, references)

    def test_mentions(self, mentions: Mapping[str, Mapping[str, Sequence[bool]]],
                      values: ArrayLike, references: Mapping[str, str | None] | None = None,
                      ) -> list[DetectorResult]:
        """Test precomputed tags: {axis: {group: [mentioned per text]}}."""
        y = np.asarray(values, dtype=float)
        results = []
        for axis, groups in mentions.items():
            reference = (references or {}).get(axis)
            for group, mentioned in groups.items():
                in_group = np.asarray(mentioned, dtype=bool)
                if len(in_group) != len(y):
                    raise ValueError(f"{len(in_group)} tags for {len(y)} values")
                if self.versus == "reference":
                    if reference is None or group == reference:
                        continue
                    other = np.asarray(groups[reference], dtype=bool) & ~in_group
                else:
                    other = ~in_group
                results.append(self._one(axis, group, reference, y[in_group], y[other]))
        return correct(results, self.correction)

    def _one(self, axis: str, group: str, reference: str | None, x: NDArray[np.float64],
             rest: NDArray[np.float64]) -> DetectorResult:
        details: dict[str, Any] = {
            "axis": axis, "group": group, "metric": self.metric, "kind": self.kind,
            "versus": reference if self.versus == "reference" else "rest"}
        if min(len(x), len(rest)) < self.min_count:
            return DetectorResult.skipped(self.name, TOO_FEW, len(rest), len(x), self.alpha,
                                          min_count=self.min_count, **details)
        if self.kind == "rate":
            statistic, p_value, effect, more = rate_test(x, rest)
            effect_name = "risk_difference"
        else:
            statistic, p_value, effect, more = continuous_test(x, rest, self.effect)
            effect_name = self.effect
        floor = MIN_EFFECT[effect_name] if self.min_effect is None else self.min_effect
        details.update(more, effect_size=effect_name, min_effect=floor)
        if abs(effect) < floor:
            details[NEGLIGIBLE] = True
        return DetectorResult(
            detector=self.name, statistic=statistic, p_value=p_value, threshold=self.alpha,
            effect_size=effect, alert=bool(p_value < self.alpha and abs(effect) >= floor),
            n_reference=len(rest), n_current=len(x), details=details)


def continuous_test(x: NDArray[np.float64], rest: NDArray[np.float64],
                    effect: Effect) -> tuple[float, float, float, dict[str, Any]]:
    """Two-sided Mann-Whitney U of the group against the rest, and the effect size."""
    test = stats.mannwhitneyu(x, rest, alternative="two-sided")
    size = cliffs_delta(x, rest) if effect == "cliffs_delta" else cohens_d(x, rest)
    return float(test.statistic), float(test.pvalue), size, {
        "mean_group": float(x.mean()), "mean_rest": float(rest.mean()),
        "median_group": float(np.median(x)), "median_rest": float(np.median(rest))}


def rate_test(x: NDArray[np.float64], rest: NDArray[np.float64]) -> tuple[
        float, float, float, dict[str, Any]]:
    """Two-sided Fisher exact test on the 2 x 2 table of events; risk difference and ratio."""
    events, others = int((x > 0).sum()), int((rest > 0).sum())
    table = [[events, len(x) - events], [others, len(rest) - others]]
    test = stats.fisher_exact(table)
    rate, rate_rest = events / len(x), others / len(rest)
    return float(test.statistic), float(test.pvalue), rate - rate_rest, {
        "rate_group": rate, "rate_rest": rate_rest,
        "risk_ratio": rate / rate_rest if rate_rest > 0 else None}
