"""Drift of one scalar or categorical signal: lengths, tokens, latency, watcher scores (KS,
PSI), error and refusal rates and other categories (chi-squared)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from watchkeeper.detectors.drift.base import DriftDetector, Outcome

PSI_BANDS = ((0.25, "major"), (0.1, "moderate"), (0.0, "stable"))
OTHER = "(other)"


class KSDetector(DriftDetector):
    """Two-sample Kolmogorov-Smirnov (scipy): any change of a continuous distribution, with no
    binning to choose. With many ties (token counts) the p-value is conservative."""

    name = "ks"
    kind = "continuous"

    def __init__(self, *, alpha: float = 0.05, min_samples: int = 30,
                 max_samples: int | None = 50000, random_state: int | None = 0) -> None:
        super().__init__(alpha=alpha, min_samples=min_samples, max_samples=max_samples,
                         random_state=random_state)

    def _fit(self, reference: NDArray[Any]) -> None:
        pass

    def _test(self, reference: NDArray[Any], current: NDArray[Any],
              rng: np.random.Generator) -> Outcome:
        method = "asymp" if max(len(reference), len(current)) > 10000 else "auto"
        ks = stats.ks_2samp(reference, current, method=method)
        return Outcome(statistic=float(ks.statistic), p_value=float(ks.pvalue),
                       effect_size=float(ks.statistic), details={
                           "median_reference": float(np.median(reference)),
                           "median_current": float(np.median(current)),
                           "effect_size": "KS distance"})


def psi(reference_share: NDArray[np.float64], current_share: NDArray[np.float64],
        epsilon: float = 1e-4) -> float:
    """Population stability index, sum (q - p) ln(q / p), with shares floored at `epsilon`
    so an empty bin on either side gives a large but finite term."""
    p = np.maximum(reference_share, epsilon)
    q = np.maximum(current_share, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_band(value: float) -> str:
    """The conventional reading: < 0.1 stable, 0.1-0.25 moderate, >= 0.25 major."""
    return next(name for bound, name in PSI_BANDS if value >= bound)


class PSIDetector(DriftDetector):
    """Population stability index over `bins` reference-quantile bins.

    The p-value uses the chi-squared approximation: for small differences PSI is close to the
    two-sample chi-squared distance, so PSI / (1/n + 1/m) is approximately chi-squared with
    (bins - 1) degrees of freedom when nothing changed. An alert needs both significance and
    PSI >= `min_psi` (0.1, the "moderate" convention): with large windows a tiny, harmless
    change is significant, and PSI's bands are what dashboards are read against.
    """

    name = "psi"
    kind = "continuous"

    def __init__(self, *, bins: int = 10, epsilon: float = 1e-4, min_psi: float = 0.1,
                 alpha: float = 0.05, min_samples: int = 30, max_samples: int | None = None,
                 random_state: int | None = 0) -> None:
        super().__init__(alpha=alpha, min_samples=min_samples, max_samples=max_samples,
                         random_state=random_state)
        self.bins = bins
        self.epsilon = epsilon
        self.min_psi = min_psi

    def _fit(self, reference: NDArray[Any]) -> None:
        quantiles = np.quantile(reference, np.linspace(0, 1, self.bins + 1)[1:-1])
        self.edges_ = np.unique(quantiles)  # ties (discrete signals) merge bins
        self.reference_share_ = self._shares(reference)

    def _shares(self, values: NDArray[Any]) -> NDArray[np.float64]:
        counts = np.bincount(np.searchsorted(self.edges_, values, side="left"),
                             minlength=len(self.edges_) + 1)
        return np.asarray(counts / counts.sum(), dtype=float)

    def _test(self, reference: NDArray[Any], current: NDArray[Any],
              rng: np.random.Generator) -> Outcome:
        current_share = self._shares(current)
        value = psi(self.reference_share_, current_share, self.epsilon)
        df = len(current_share) - 1
        scale = 1 / len(reference) + 1 / len(current)
        p_value = float(stats.chi2.sf(value / scale, df)) if df > 0 else 1.0
        return Outcome(statistic=value, p_value=p_value, effect_size=value,
                       practical=value >= self.min_psi, details={
                           "band": psi_band(value), "bins": len(current_share),
                           "min_psi": self.min_psi,
                           "reference_share": np.round(self.reference_share_, 4),
                           "current_share": np.round(current_share, 4),
                           "p_value_method": "chi-squared approximation",
                           "effect_size": "PSI"})


class ChiSquaredDetector(DriftDetector):
    """Chi-squared test of homogeneity on category counts (scipy), for categorical signals and
    rates (pass the per-sample booleans: error, refusal).

    Categories seen on one side only (a new finish reason, a new error type) are kept as their
    own columns; categories too rare for the approximation (expected count below
    `min_expected` in the smaller window) are pooled into "(other)" first.
    """

    name = "chi2"
    kind = "categorical"

    def __init__(self, *, min_expected: float = 5.0, alpha: float = 0.05, min_samples: int = 30,
                 max_samples: int | None = None, random_state: int | None = 0) -> None:
        super().__init__(alpha=alpha, min_samples=min_samples, max_samples=max_samples,
                         random_state=random_state)
        self.min_expected = min_expected

    def _fit(self, reference: NDArray[Any]) -> None:
        pass

    def _test(self, reference: NDArray[Any], current: NDArray[Any],
              rng: np.random.Generator) -> Outcome:
        categories, table = contingency(reference, current)
        categories, table = pool_rare(categories, table, self.min_expected)
        n = table.sum()
        if table.shape[1] < 2:
            statistic, p_value, dof = 0.0, 1.0, 0
        else:
            chi2 = stats.chi2_contingency(table, correction=False)
            statistic, p_value, dof = float(chi2.statistic), float(chi2.pvalue), int(chi2.dof)
        shares = table / table.sum(1, keepdims=True)
        seen = set(reference.tolist())
        unseen = sorted({c for c in current.tolist() if c not in seen})
        return Outcome(
            statistic=statistic, p_value=p_value, effect_size=float(np.sqrt(statistic / n)),
            details={"dof": dof, "categories": categories,
                     "reference_share": np.round(shares[0], 4),
                     "current_share": np.round(shares[1], 4),
                     "unseen_in_reference": unseen[:20],
                     "effect_size": "Cramer's V"})


def contingency(reference: NDArray[Any], current: NDArray[Any]) -> tuple[list[str], NDArray[Any]]:
    """Categories (the union of both sides, sorted) and the 2 x k table of counts."""
    categories = sorted(set(reference.tolist()) | set(current.tolist()))
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((2, len(categories)), dtype=np.int64)
    for row, values in enumerate((reference, current)):
        np.add.at(table[row], [index[v] for v in values.tolist()], 1)
    return categories, table


def pool_rare(categories: list[str], table: NDArray[Any],
              min_expected: float) -> tuple[list[str], NDArray[Any]]:
    """Pool the columns whose expected count in the smaller row is below `min_expected`."""
    expected = table.sum(0) * table.sum(1).min() / table.sum()
    rare = expected < min_expected
    if rare.sum() < 2:  # pooling one column alone changes nothing
        return categories, table
    kept = [c for c, r in zip(categories, rare, strict=True) if not r]
    pooled = np.c_[table[:, ~rare], table[:, rare].sum(1)]
    return [*kept, OTHER], pooled
