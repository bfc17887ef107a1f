"""Small statistics shared by the drift and bias detectors: multiple-testing corrections,
permutation p-values and effect sizes. Each is a few lines of numpy on purpose: they are the
rules that decide alerts, so they should be readable here rather than hidden in a dependency.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Correction = Literal["bh", "holm", "bonferroni", "none"]
CORRECTIONS: tuple[str, ...] = ("bh", "holm", "bonferroni", "none")


def adjust_p_values(p_values: ArrayLike, method: Correction = "bh") -> NDArray[np.float64]:
    """Adjusted p-values, in input order, to compare with alpha.

    bh: Benjamini-Hochberg (false discovery rate; when nothing changed it holds the chance of
    any alert at alpha, and it loses less power than Holm when several things moved).
    holm: Holm's step-down (family-wise error under any dependence). bonferroni: p * m.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0 or method == "none":
        return p.copy()
    if method == "bonferroni":
        return np.asarray(np.minimum(p * m, 1.0), dtype=float)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        stepped = np.maximum.accumulate(ranked * (m - np.arange(m)))
    elif method == "bh":
        stepped = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    else:
        raise ValueError(f"unknown correction {method!r} (known: {', '.join(CORRECTIONS)})")
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def permutation_p_value(observed: float, null: ArrayLike) -> float:
    """(1 + #{null >= observed}) / (1 + n): the observed statistic counts as one of the
    permutations, which keeps the test exactly at its level (never p = 0)."""
    null = np.asarray(null, dtype=float)
    # A relative tolerance keeps ties (identical windows give identical statistics up to
    # rounding) on the conservative side.
    hits = int(np.sum(null >= observed - 1e-12 * max(1.0, abs(observed))))
    return (1 + hits) / (1 + null.size)


def column_p_values(statistics: ArrayLike) -> NDArray[np.float64]:
    """Each entry's permutation p-value among all of them (itself included): the share at
    least as large. For the observed statistic followed by its permutations, entry 0 is
    `permutation_p_value`; the others put every permutation on the same scale, which is what
    lets several statistics be combined (their smallest p) and the combination calibrated on
    the same permutations."""
    t = np.asarray(statistics, dtype=float)
    tolerance = 1e-12 * np.maximum(1.0, np.abs(t))
    at_least = t.size - np.searchsorted(np.sort(t), t - tolerance, side="left")
    return np.asarray(at_least / t.size, dtype=np.float64)


def cliffs_delta(x: ArrayLike, y: ArrayLike) -> float:
    """P(X > Y) - P(X < Y), in [-1, 1]: a rank effect size that needs no distributional
    assumption (latency and lengths are skewed); |d| < 0.147 is negligible (Romano et al.)."""
    x = np.sort(np.asarray(x, dtype=float))
    y = np.sort(np.asarray(y, dtype=float))
    if x.size == 0 or y.size == 0:
        return 0.0
    below = np.searchsorted(y, x, side="left")  # y < x
    above = y.size - np.searchsorted(y, x, side="right")  # y > x
    return float((below.sum() - above.sum()) / (x.size * y.size))


def cohens_d(x: ArrayLike, y: ArrayLike) -> float:
    """(mean x - mean y) / pooled standard deviation; 0 when both are constant."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    nx, ny = x.size, y.size
    if nx < 2 or ny < 2:
        return 0.0
    pooled = ((nx - 1) * x.var(ddof=1) + (ny - 1) * y.var(ddof=1)) / (nx + ny - 2)
    diff = float(x.mean() - y.mean())
    if pooled <= 0:
        return 0.0 if diff == 0 else float(np.sign(diff) * np.inf)
    return diff / float(np.sqrt(pooled))
