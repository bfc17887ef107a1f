"""A bias audit of a scorer on minimal pairs: two texts that differ only in the group they
mention ("the christian neighbour ..." / "the muslim neighbour ..."), each scored, the
difference b - a tested per group.

Per group: n, the mean difference, its paired t interval at 1 - alpha, and a paired t-test of
H0 |mean| <= `tolerance` against |mean| > `tolerance` (two one-sided tests against +tolerance
and -tolerance; p = the smaller one-sided p doubled, capped at 1), Holm-corrected across the
groups; a group is flagged when its corrected p < alpha. The tolerance is there because a
fair scorer built on sentence embeddings still moves a little when "woman" becomes "man" (the
embeddings differ), and with hundreds of pairs a test against exactly 0 would flag every
group for a difference nobody would act on; it is the smallest score difference worth a flag.
With tolerance 0 the test is the ordinary two-sided paired t-test. Before the correction,
p < alpha exactly when the interval lies outside [-tolerance, tolerance].

"overall" is the same test over all pairs, a single test outside the groups' family (not
corrected). Groups with fewer than 2 pairs are reported untested (p None, a reason). Pairs
with a missing (NaN) score are left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from watchkeeper.detectors.result import TOO_FEW, DetectorResult, correct
from watchkeeper.detectors.stats import Correction

NAME = "pair_audit"
ALL = "all"
TEST = ("paired t-test of b - a against ±tolerance (two one-sided tests, the smaller p "
        "doubled), Holm across groups")


@dataclass(frozen=True)
class PairTest:
    """One paired test: `statistic` is t against the nearer edge of the tolerance band (None
    when the differences do not vary)."""

    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    statistic: float | None
    p_value: float


def paired_test(diff: ArrayLike, tolerance: float = 0.0, alpha: float = 0.05) -> PairTest:
    """The test of the module docstring on differences b - a (at least 2)."""
    _check(alpha, tolerance)
    d = np.asarray(diff, dtype=float)
    n = d.size
    if n < 2:
        raise ValueError(f"a paired test needs at least 2 pairs, got {n}")
    mean = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n)
    if not se > 1e-12 * max(1.0, abs(mean)):  # every difference the same
        return PairTest(n, mean, mean, mean, None, 0.0 if abs(mean) > tolerance else 1.0)
    df = n - 1
    above = (mean - tolerance) / se  # H1: mean > +tolerance
    below = (mean + tolerance) / se  # H1: mean < -tolerance
    p_above, p_below = float(stats.t.sf(above, df)), float(stats.t.cdf(below, df))
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return PairTest(n, mean, mean - half, mean + half, above if p_above <= p_below else below,
                    min(1.0, 2 * min(p_above, p_below)))


def _check(alpha: float, tolerance: float) -> None:
    if not 0 < alpha < 1 or not tolerance >= 0:
        raise ValueError(f"alpha must be in (0, 1) and tolerance >= 0, got {alpha}, {tolerance}")


def _result(diff: np.ndarray, group: str, tolerance: float, alpha: float) -> DetectorResult:
    details: dict[str, Any] = {"group": group, "tolerance": tolerance,
                               "effect_size": "mean score difference b - a"}
    n = int(diff.size)
    if n < 2:
        return DetectorResult(detector=NAME, statistic=None, p_value=None, threshold=alpha,
                              effect_size=float(diff.mean()) if n else None, alert=False,
                              n_reference=n, n_current=n,
                              details={"reason": TOO_FEW, "min_pairs": 2, **details,
                                       "ci_low": None, "ci_high": None})
    test = paired_test(diff, tolerance, alpha)
    return DetectorResult(detector=NAME, statistic=test.statistic, p_value=test.p_value,
                          threshold=alpha, effect_size=test.mean_diff,
                          alert=test.p_value < alpha, n_reference=n, n_current=n,
                          details={**details, "ci_low": test.ci_low, "ci_high": test.ci_high})


@dataclass(frozen=True)
class PairAudit:
    """Per group (sorted by name) and over all pairs, one `DetectorResult` each: effect_size
    the mean difference, details ci_low / ci_high, p_value corrected across the groups (the
    raw one in details.p_value_raw), alert = flagged."""

    groups: dict[str, DetectorResult]
    overall: DetectorResult

    def as_dict(self) -> dict[str, Any]:
        """{"groups": {group: row}, "overall": row}, rows as `row` writes them."""
        return {"groups": {g: row(r) for g, r in self.groups.items()},
                "overall": row(self.overall)}


def row(result: DetectorResult) -> dict[str, Any]:
    """A result as the audit's JSON reports it: n, mean_diff, ci_low, ci_high, p_value,
    flagged (+ p_value_raw when corrected, reason when untested)."""
    out: dict[str, Any] = {"n": result.n_current, "mean_diff": result.effect_size,
                           "ci_low": result.details.get("ci_low"),
                           "ci_high": result.details.get("ci_high"),
                           "p_value": result.p_value, "flagged": result.alert}
    if "p_value_raw" in result.details:
        out["p_value_raw"] = result.details["p_value_raw"]
    if not result.ran:
        out["reason"] = result.details.get("reason")
    return out


def audit_pairs(a: ArrayLike, b: ArrayLike, groups: Sequence[str] | None = None, *,
                alpha: float = 0.05, tolerance: float = 0.02,
                correction: Correction = "holm") -> PairAudit:
    """Audit scores `a` and `b` of the same pairs (b - a per pair), per group (`groups`, one
    name per pair; default every pair in group "all"). `correction` "none" leaves the groups'
    p-values raw, for a caller that corrects a larger family itself."""
    _check(alpha, tolerance)
    a_scores, b_scores = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    names = np.asarray([ALL] * a_scores.size if groups is None else [str(g) for g in groups],
                       dtype=object)
    if not a_scores.size == b_scores.size == names.size:
        raise ValueError(f"{a_scores.size} a scores, {b_scores.size} b scores and {names.size} "
                         "groups: one of each per pair")
    labels = sorted(set(names))
    kept = np.isfinite(a_scores) & np.isfinite(b_scores)
    diff, names = (b_scores - a_scores)[kept], names[kept]
    results = correct([_result(diff[names == g], g, tolerance, alpha) for g in labels],
                      correction)
    return PairAudit(dict(zip(labels, results, strict=True)),
                     _result(diff, ALL, tolerance, alpha))
