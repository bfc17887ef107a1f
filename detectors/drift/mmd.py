"""Maximum mean discrepancy with a Gaussian kernel and a permutation test.

MMD compares whole distributions of embeddings, not one direction or one coordinate, so a new
topic cluster, a mean shift and a change of spread all count. The permutation test makes the
p-value exact at any sample size without an asymptotic null: the pooled kernel matrix is
computed once, and each permutation only re-weights it (one matrix product for a block of
permutations), which is what makes 500 permutations cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper.detectors.drift.base import DriftDetector, Outcome
from watchkeeper.detectors.stats import permutation_p_value

_BLOCK = 128  # permutations per matrix product: bounds the memory of the n x block weights


def squared_distances(x: NDArray[np.floating[Any]],
                      y: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """Pairwise squared Euclidean distances (float32: the kernel needs no more precision)."""
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    d = (x32 * x32).sum(1)[:, None] + (y32 * y32).sum(1)[None, :] - 2.0 * (x32 @ y32.T)
    return np.asarray(np.maximum(d, 0.0, out=d), dtype=np.float32)


def median_bandwidth(x: NDArray[np.floating[Any]], rng: np.random.Generator,
                     max_points: int = 1000) -> float:
    """The median pairwise distance within `x` (the median heuristic), on at most `max_points`
    rows: it puts the kernel's scale where the data's distances are."""
    if len(x) > max_points:
        x = x[rng.choice(len(x), size=max_points, replace=False)]
    d2 = squared_distances(x, x)[np.triu_indices(len(x), k=1)]
    median = float(np.sqrt(np.median(d2))) if d2.size else 0.0
    return median if median > 0 else 1.0


def gaussian_kernel(x: NDArray[np.floating[Any]], bandwidth: float,
                    scales: tuple[float, ...] = (1.0,)) -> NDArray[np.float32]:
    """k(a, b) = mean over scales s of exp(-|a - b|^2 / (2 (s * bandwidth)^2)), for all pairs."""
    d2 = squared_distances(x, x)
    if len(scales) == 1:
        d2 *= -1.0 / (2.0 * (scales[0] * bandwidth) ** 2)
        return np.exp(d2, out=d2)
    k = np.zeros_like(d2)
    for s in scales:
        k += np.exp(d2 * (-1.0 / (2.0 * (s * bandwidth) ** 2)))
    k /= len(scales)
    return k


def mmd2_permutations(kernel: NDArray[np.float32], n_x: int, n_permutations: int,
                      rng: np.random.Generator) -> tuple[float, NDArray[np.float64]]:
    """Unbiased MMD^2 of the first `n_x` rows against the rest, and under `n_permutations`
    random relabellings of the pooled rows.

    With z the 0/1 indicator of the first sample: Sxx = z'Kz, Sxy = z'r - Sxx (r = row sums),
    Syy = total - Sxx - 2 Sxy; diagonal terms are removed for the unbiased estimate.
    """
    n = kernel.shape[0]
    n_y = n - n_x
    rows = kernel.sum(1, dtype=np.float64)
    total = float(rows.sum())
    diag = np.diag(kernel).astype(np.float64)
    diag_total = float(diag.sum())

    def stats(z: NDArray[np.float32]) -> NDArray[np.float64]:
        sxx = np.einsum("ij,ij->j", z, kernel @ z, dtype=np.float64)
        zf = z.astype(np.float64)
        sxy = rows @ zf - sxx
        syy = total - sxx - 2.0 * sxy
        dx = diag @ zf
        dy = diag_total - dx
        return np.asarray((sxx - dx) / (n_x * (n_x - 1)) + (syy - dy) / (n_y * (n_y - 1))
                          - 2.0 * sxy / (n_x * n_y), dtype=np.float64)

    observed = np.zeros((n, 1), dtype=np.float32)
    observed[:n_x] = 1.0
    null = np.empty(n_permutations)
    for start in range(0, n_permutations, _BLOCK):
        size = min(_BLOCK, n_permutations - start)
        picks = rng.permuted(np.tile(np.arange(n), (size, 1)), axis=1)[:, :n_x]
        z = np.zeros((n, size), dtype=np.float32)
        z[picks, np.arange(size)[:, None]] = 1.0
        null[start:start + size] = stats(z)
    return float(stats(observed)[0]), null


class MMDDetector(DriftDetector):
    """Embedding drift by MMD (Gaussian kernel, median-heuristic bandwidth) with a permutation
    test.

    The median is taken over both windows pooled, label-blind: a bandwidth fitted to the
    reference alone makes the kernel depend on which rows are the reference, which breaks the
    exchangeability that makes the permutation test exact.

    `max_samples` (default 2,500 per side) bounds the pooled kernel matrix (5,000^2 floats) and
    so the run time; larger windows are subsampled with the seed. `scales` multiplies the
    bandwidth: several scales average kernels, which keeps power when the shift is at a
    different scale from the reference's typical distance.
    """

    name = "mmd"
    kind = "embedding"

    def __init__(self, *, n_permutations: int = 500, bandwidth: float | None = None,
                 scales: tuple[float, ...] = (1.0,), alpha: float = 0.05,
                 min_samples: int = 30, max_samples: int | None = 2500,
                 random_state: int | None = 0) -> None:
        super().__init__(alpha=alpha, min_samples=min_samples, max_samples=max_samples,
                         random_state=random_state)
        self.n_permutations = n_permutations
        self.bandwidth = bandwidth
        self.scales = scales

    def _fit(self, reference: NDArray[Any]) -> None:
        pass

    def _test(self, reference: NDArray[Any], current: NDArray[Any],
              rng: np.random.Generator) -> Outcome:
        pooled = np.vstack([reference, current])
        bandwidth = self.bandwidth or median_bandwidth(pooled, rng)
        kernel = gaussian_kernel(pooled, bandwidth, tuple(self.scales))
        observed, null = mmd2_permutations(kernel, len(reference), self.n_permutations, rng)
        return Outcome(
            statistic=observed, p_value=permutation_p_value(observed, null),
            effect_size=float(np.sqrt(max(observed, 0.0))),
            details={"bandwidth": bandwidth, "scales": list(self.scales),
                     "n_permutations": self.n_permutations,
                     "null_mean": float(null.mean()), "null_q95": float(np.quantile(null, 0.95)),
                     "effect_size": "sqrt(max(MMD^2, 0)) in kernel space"})
