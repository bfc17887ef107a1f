"""Per-component Kolmogorov-Smirnov tests on a PCA projection fitted on the reference.

Cheap (one projection, k KS tests) and explainable: it says which principal directions
moved. It sees only the marginals of the top components; MMD and the classifier see the rest.
The k p-values are corrected (Benjamini-Hochberg by default) so that the chance of any alert
when nothing changed stays at alpha.

By default the PCA is fitted on both windows together, label-blind (`fit_on="pooled"`). A PCA
fitted on the reference alone over-fits it: the reference's spread along its own top
components is inflated, so fresh data from the same distribution looks narrower and KS fires
(measured in docs/drift.md). Pooling treats both windows alike, so the test keeps its level,
and a new cluster in the current window earns its own component, which adds power.
`fit_on="reference"` keeps the classic variant (projection precomputed once per fit).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from watchkeeper.detectors.drift.base import DriftDetector, Outcome
from watchkeeper.detectors.drift.linalg import Components, principal_components
from watchkeeper.detectors.stats import Correction, adjust_p_values


class PCAKSDetector(DriftDetector):
    """Embedding drift by KS on the first `n_components` principal components."""

    name = "pca_ks"
    kind = "embedding"

    def __init__(self, *, n_components: int = 20, correction: Correction = "bh",
                 fit_on: Literal["pooled", "reference"] = "pooled", alpha: float = 0.05,
                 min_samples: int = 30, max_samples: int | None = 20000,
                 random_state: int | None = 0) -> None:
        super().__init__(alpha=alpha, min_samples=min_samples, max_samples=max_samples,
                         random_state=random_state)
        self.n_components = n_components
        self.correction = correction
        self.fit_on = fit_on

    def _pca(self, x: NDArray[Any]) -> Components:
        return principal_components(x, min(self.n_components, x.shape[0] - 1, x.shape[1]))

    def _fit(self, reference: NDArray[Any]) -> None:
        if self.fit_on == "reference":
            self.pca_ = self._pca(reference)
            self.reference_projection_ = self.pca_.project(reference)

    def _test(self, reference: NDArray[Any], current: NDArray[Any],
              rng: np.random.Generator) -> Outcome:
        if self.fit_on == "reference":
            pca, ref_projected = self.pca_, self.reference_projection_
        else:
            pca = self._pca(np.vstack([reference, current]))
            ref_projected = pca.project(reference)
        projected = pca.project(current)
        ks = stats.ks_2samp(ref_projected, projected, axis=0,
                            method="asymp" if len(projected) > 5000 else "auto")
        d = np.atleast_1d(ks.statistic)
        adjusted = adjust_p_values(np.atleast_1d(ks.pvalue), self.correction)
        moved = np.flatnonzero(adjusted < self.alpha)
        return Outcome(
            statistic=float(d.max()), p_value=float(adjusted.min()),
            effect_size=float(d.max()),
            details={"n_components": len(d), "correction": self.correction,
                     "fit_on": self.fit_on,
                     "components_moved": moved.tolist(),
                     "ks_statistics": np.round(d, 4).tolist(),
                     "p_values_adjusted": [float(f"{p:.3g}") for p in adjusted],
                     "explained_variance": pca.explained,
                     "effect_size": "largest KS distance over components"})
