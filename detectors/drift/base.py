"""The drift detector contract, scikit-learn style: `__init__` stores parameters and does
nothing else; `fit(reference)` returns self; `test(current)` returns a `DetectorResult` and is
pure given `random_state` (same data, same seed, same result).

`DriftDetector` does the parts every detector shares, so each detector module holds only its
statistic: input checks, the minimum sample size (a result with details.reason instead of an
exception), seeded subsampling to `max_samples`, and folding the outcome into a result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.detectors.result import NEGLIGIBLE, TOO_FEW, DetectorResult


@runtime_checkable
class Detector(Protocol):
    """What the schedule and the scenario runner rely on."""

    name: str
    alpha: float

    def fit(self, reference: Any) -> Self: ...

    def test(self, current: Any) -> DetectorResult: ...


@dataclass
class Outcome:
    """What a detector's statistic produced; `DriftDetector` turns it into a result.
    `practical` is False when the change is significant but too small to alert on."""

    statistic: float
    p_value: float
    effect_size: float | None
    details: dict[str, Any] = field(default_factory=dict)
    practical: bool = True


T = TypeVar("T", bound=np.generic)


def subsample(values: NDArray[T], cap: int | None, rng: np.random.Generator) -> NDArray[T]:
    """At most `cap` rows, drawn without replacement (in their original order), so a detector's
    cost stays bounded on a busy service; the seed makes the draw reproducible."""
    n = len(values)
    if cap is None or n <= cap:
        return values
    keep = np.sort(rng.choice(n, size=cap, replace=False))
    return values[keep]


class DriftDetector(ABC):
    """Base of every drift detector. Subclasses set `name` and `kind`, store their own
    parameters in `__init__` (calling `super().__init__` for the shared ones) and implement
    `_fit` and `_test`."""

    name: ClassVar[str]
    kind: ClassVar[str]  # "embedding", "continuous" or "categorical": the input it takes

    def __init__(self, *, alpha: float = 0.05, min_samples: int = 30,
                 max_samples: int | None = None, random_state: int | None = 0) -> None:
        self.alpha = alpha
        self.min_samples = min_samples
        self.max_samples = max_samples
        self.random_state = random_state

    # -- the contract ---------------------------------------------------------------------
    def fit(self, reference: ArrayLike) -> Self:
        """Keep (a seeded subsample of) the reference and precompute what tests reuse."""
        data, dropped = self._prepare(reference)
        self.n_reference_ = len(data)
        self.reference_ = subsample(data, self.max_samples, self._rng(1))
        self.reference_dropped_ = dropped
        if len(self.reference_) >= self.min_samples:
            self._fit(self.reference_)
        return self

    def test(self, current: ArrayLike) -> DetectorResult:
        """Compare a window with the fitted reference."""
        if not hasattr(self, "reference_"):
            raise RuntimeError(f"{type(self).__name__}.test before fit")
        data, dropped = self._prepare(current)
        n_ref, n_cur = self.n_reference_, len(data)
        if min(len(self.reference_), n_cur) < self.min_samples:
            return DetectorResult.skipped(self.name, TOO_FEW, n_ref, n_cur, self.alpha,
                                          min_samples=self.min_samples)
        rng = self._rng(2)
        cur = subsample(data, self.max_samples, rng)
        out = self._test(self.reference_, cur, rng)
        details = dict(out.details)
        if len(self.reference_) < n_ref or len(cur) < n_cur:
            details["subsampled_to"] = [len(self.reference_), len(cur)]
        if dropped or self.reference_dropped_:
            details["dropped_missing"] = [self.reference_dropped_, dropped]
        if not out.practical:
            details[NEGLIGIBLE] = True
        return DetectorResult(
            detector=self.name, statistic=out.statistic, p_value=out.p_value,
            threshold=self.alpha, effect_size=out.effect_size,
            alert=bool(out.p_value < self.alpha and out.practical),
            n_reference=n_ref, n_current=n_cur, details=details)

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters (for the result's provenance and for cloning)."""
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    # -- for subclasses ---------------------------------------------------------------------
    def _prepare(self, values: ArrayLike) -> tuple[NDArray[Any], int]:
        """The validated array for this detector's kind, and how many rows were missing."""
        if self.kind == "continuous":
            return as_numbers(values)
        if self.kind == "categorical":
            return as_labels(values)
        return as_matrix(values), 0

    @abstractmethod
    def _fit(self, reference: NDArray[Any]) -> None: ...

    @abstractmethod
    def _test(self, reference: NDArray[Any], current: NDArray[Any],
              rng: np.random.Generator) -> Outcome: ...

    def _rng(self, stream: int) -> np.random.Generator:
        """Independent seeded streams for fit and test, so `test` is pure given the seed."""
        if self.random_state is None:
            return np.random.default_rng()
        return np.random.default_rng([self.random_state, stream])


def as_matrix(values: ArrayLike) -> NDArray[np.float64]:
    """n x d float rows (a list of vectors, as ClickHouse returns Array(Float32)); rows with a
    non-finite value are refused, since they mean a broken embedder, not drift."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1 and x.size == 0:
        return x.reshape(0, 0)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be an n x d array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or inf")
    return x


def as_numbers(values: ArrayLike) -> tuple[NDArray[np.float64], int]:
    """A 1-d float array without its missing values (None, NaN), and how many were dropped."""
    x = np.asarray(values, dtype=np.float64).ravel()  # None becomes NaN
    keep = np.isfinite(x)
    return x[keep], int((~keep).sum())


def as_labels(values: ArrayLike) -> tuple[NDArray[np.str_], int]:
    """A 1-d array of category names (booleans and numbers as their str); None dropped."""
    raw = np.asarray(values, dtype=object).ravel()
    keep = np.array([v is not None and not (isinstance(v, float) and np.isnan(v))
                     for v in raw], dtype=bool)
    return np.array([str(v) for v in raw[keep]], dtype=str), int((~keep).sum())
