"""Per-component Kolmogorov-Smirnov tests on a PCA projection fitted on the reference.

Cheap (one projection, k KS tests) and explainable: it says which principal directions of the
reference moved. It sees only the marginals of the top components, so a shift that lives in a
direction the reference barely varies in can slip past it; MMD and the classifier cover that.
The k p-values are corrected (Benjamini-Hochberg by default) so that the chance of any alert
when nothing changed stays at alpha.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats
from sklearn.decomposition import PCA

from watchkeeper.detectors.drift.base import DriftDetector, Outcome
from watchkeeper.detectors.stats import Correction, adjust_p_values


class PCAKSDetector(DriftDetector):
    """Embedding drift by KS on the first `n_components` principal components."""

    name = "pca_ks"
    kind = "embedding"

    def __init__(self, *, n_components: int = 20, correction: Correction = "bh",
                 alpha: float = 0.05, min_samples: int = 30, max_samples: int | None = 20000,
                 random_state: int | None = 0) -> None:
        super().__init__(alpha=alpha, min_samples=min_samples, max_samples=max_samples,
                         random_state=random_state)
        self.n_components = n_components
        self.correction = correction

    def _fit(self, reference: NDArray[Any]) -> None:
        k = min(self.n_components, reference.shape[0] - 1, reference.shape[1])
        self.pca_ = PCA(n_components=k, random_state=self.random_state).fit(reference)
        self.reference_projection_ = self.pca_.transform(reference)

    def _test(self, reference: NDArray[Any], current: NDArray[Any],
              rng: np.random.Generator) -> Outcome:
        projected = self.pca_.transform(current)
        ks = stats.ks_2samp(self.reference_projection_, projected, axis=0,
                            method="asymp" if len(projected) > 5000 else "auto")
        d = np.atleast_1d(ks.statistic)
        adjusted = adjust_p_values(np.atleast_1d(ks.pvalue), self.correction)
        moved = np.flatnonzero(adjusted < self.alpha)
        return Outcome(
            statistic=float(d.max()), p_value=float(adjusted.min()),
            effect_size=float(d.max()),
            details={"n_components": len(d), "correction": self.correction,
                     "components_moved": moved.tolist(),
                     "ks_statistics": np.round(d, 4).tolist(),
                     "p_values_adjusted": [float(f"{p:.3g}") for p in adjusted],
                     "explained_variance": float(self.pca_.explained_variance_ratio_.sum()),
                     "effect_size": "largest KS distance over components"})
