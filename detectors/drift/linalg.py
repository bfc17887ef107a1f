"""Small dense linear algebra for the embedding detectors.

Decompositions of d x d matrices (d = 384) run with one BLAS thread: threaded OpenBLAS spent
2.2 s on one 384 x 384 `eigh` on the 2-core benchmark machine where one thread takes 0.03 s
(and 0.18 s against 0.02 s for `solve`). The large products around them keep every thread.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits


class Components(NamedTuple):
    """A PCA: the mean, the top directions (d x k) and the share of variance they explain."""

    mean: NDArray[np.float64]
    directions: NDArray[np.float64]
    explained: float

    def project(self, x: NDArray[Any]) -> NDArray[np.float64]:
        return np.asarray((x - self.mean) @ self.directions, dtype=np.float64)


def principal_components(x: NDArray[Any], k: int) -> Components:
    """The top `k` principal directions of `x`, from the eigenvectors of its Gram matrix
    (d x d when rows outnumber features, else n x n)."""
    mean = x.mean(0)
    centred = x - mean
    n, d = centred.shape
    gram = centred.T @ centred if n >= d else centred @ centred.T
    with threadpool_limits(limits=1, user_api="blas"):
        values, vectors = np.linalg.eigh(gram)
    top = np.argsort(values)[::-1][:k]
    total = float(values.clip(min=0).sum())
    if n < d:  # back from the row space: v = X' u / |X' u|
        vectors = centred.T @ vectors
        vectors /= np.maximum(np.linalg.norm(vectors, axis=0), 1e-12)
    explained = float(values[top].clip(min=0).sum()) / total if total > 0 else 0.0
    return Components(mean, np.asarray(vectors[:, top], dtype=np.float64), explained)


def solve(a: NDArray[Any], b: NDArray[Any]) -> NDArray[np.float64]:
    """`np.linalg.solve` with one BLAS thread (see the module note)."""
    with threadpool_limits(limits=1, user_api="blas"):
        return np.asarray(np.linalg.solve(a, b), dtype=np.float64)
