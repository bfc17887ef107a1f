"""Classifier two-sample test: can a model tell the current window from the reference?

A held-out AUC above 0.5 means it can. Every row is scored by a model fitted on the other
folds of a stratified K-fold split, and the AUC sums the Mann-Whitney U of each fold.

The AUC is an average over all rows, so it is weak against the commonest drift, a new kind
of traffic in part of the window: when 10% of the current rows are new, the AUC can reach at
most 0.55 even if the model spots every one of them, yet those rows then fill the top of the
held-out ranking. So the test also counts the current rows among the top 2, 5, 10 and 20% of
each fold's scores, and its p-value is the smallest of the five p-values (AUC and the four
tails) calibrated against the smallest p of every permutation: one test, exact at its level,
that keeps the AUC's power for shifts of the whole window and gains the tails' for part of it.

The p-value comes from a permutation test of the labels with the model refitted for every
permutation: exact at any size, where the Mann-Whitney normal approximation on K-fold scores
is not (the folds share training data, so their U statistics are correlated; measured at 11%
false alarms for alpha = 0.05, see docs/drift.md). Refitting 500 times is affordable because
the default model is a ridge-regression classifier (a regularised Fisher discriminant): its
held-out scores are linear in the labels, X_test (X_train'X_train + lambda I)^-1 X_train' y,
so all permutations are one matrix product per fold. Labels are permuted within folds, so
every permutation keeps the folds' class balance, as the observed labelling does.

Any other scikit-learn classifier (`estimator`, e.g. gradient boosting for shifts no linear
model sees) is tested on one held-out split instead, where the Mann-Whitney test is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, train_test_split

from watchkeeper.detectors.drift.base import DriftDetector, Outcome
from watchkeeper.detectors.drift.linalg import solve
from watchkeeper.detectors.stats import column_p_values, permutation_p_value

# Shares of each fold's highest held-out scores whose current rows are counted (see above).
TAILS = (0.02, 0.05, 0.1, 0.2)


def fold_permutations(y: NDArray[np.int_], folds: NDArray[np.int_], n_permutations: int,
                      rng: np.random.Generator) -> NDArray[np.float64]:
    """n x (1 + P) label matrix: the observed labels, then P within-fold permutations."""
    labels = np.empty((len(y), 1 + n_permutations))
    labels[:, 0] = y
    for k in np.unique(folds):
        rows = np.flatnonzero(folds == k)
        labels[rows, 1:] = rng.permuted(np.tile(y[rows], (n_permutations, 1)), axis=1).T
    return labels


class RidgeFolds:
    """Held-out scores of a ridge classifier for every fold and every label column.

    lambda = ridge * mean feature variance * n, so `ridge` means the same at any scale. The
    intercept is a constant per fold and does not change a within-fold AUC, so it is left out.
    The Gram matrix and X'Y are computed once for all rows; each fold subtracts its own rows.
    """

    def __init__(self, x: NDArray[np.float64], labels: NDArray[np.float64], ridge: float):
        self.x, self.labels, self.ridge = x, labels, ridge
        self.gram = x.T @ x
        self.xy = x.T @ labels
        self.sum_x = x.sum(0)
        self.sum_y = labels.sum(0)

    def scores(self, held: NDArray[np.int_]) -> NDArray[np.float64]:
        xh, yh = self.x[held], self.labels[held]
        n = len(self.x) - len(held)
        mean = (self.sum_x - xh.sum(0)) / n
        # centred training Gram and X'y from the totals minus the held-out rows
        gram = self.gram - xh.T @ xh - n * np.outer(mean, mean)
        xy = self.xy - xh.T @ yh - np.outer(mean, self.sum_y - yh.sum(0))
        d = gram.shape[0]
        lam = self.ridge * float(np.trace(gram)) / d or self.ridge  # constant data: trace 0
        beta = solve(gram + lam * np.eye(d), xy)
        return np.asarray(xh @ beta)


class FoldCounts:
    """Per label column, summed over folds: the Mann-Whitney U of the held-out scores (ties
    averaged), the pairs it is out of, and the current rows among each fold's top `tails`."""

    def __init__(self, n_columns: int, tails: tuple[float, ...]) -> None:
        self.tails = tails
        self.u = np.zeros(n_columns)
        self.pairs = 0.0
        self.top = np.zeros((len(tails), n_columns))
        self.top_rows = np.zeros(len(tails))

    def add(self, scores: NDArray[np.float64], labels: NDArray[np.float64]) -> None:
        ranks = stats.rankdata(scores, axis=0)
        n = len(labels)
        n1 = labels[:, 0].sum()
        self.u += (ranks * labels).sum(0) - n1 * (n1 + 1) / 2
        self.pairs += float(n1 * (n - n1))
        for i, share in enumerate(self.tails):
            k = max(1, round(share * n))
            self.top[i] += ((ranks > n - k) * labels).sum(0)
            self.top_rows[i] += k

    def p_value(self) -> tuple[float, dict[str, Any]]:
        """The combined permutation p-value of column 0 (see the module note) and its parts."""
        parts = [column_p_values(self.u / self.pairs),
                 *(column_p_values(top) for top in self.top)]
        smallest = np.minimum.reduce(parts)
        return permutation_p_value(-smallest[0], -smallest[1:]), {
            "p_value_auc": float(parts[0][0]),
            "top_current_share": {f"{q:g}": float(self.top[i, 0] / self.top_rows[i])
                                  for i, q in enumerate(self.tails)},
            "p_value_top": {f"{q:g}": float(parts[i + 1][0]) for i, q in enumerate(self.tails)}}


class ClassifierDetector(DriftDetector):
    """Embedding drift by a classifier two-sample test (held-out AUC, and the current rows'
    share of the top held-out scores).

    Strong where a shift is a direction a linear model can find (a new topic, a new language),
    and its AUC reads as "how separable": 0.5 is no drift, 1.0 is a different population;
    `details.top_current_share` reads as "how much of the top is new" (0.5 is no drift). The
    smallest p-value it can give is about (1 + 1 + len(tails)) / (1 + n_permutations): raise
    `n_permutations` for an alpha below 0.02.
    """

    name = "classifier"
    kind = "embedding"

    def __init__(self, *, ridge: float = 10.0, n_folds: int = 5, n_permutations: int = 500,
                 tails: tuple[float, ...] = TAILS, estimator: Any = None,
                 test_size: float = 0.3, alpha: float = 0.05,
                 min_samples: int = 30, max_samples: int | None = 10000,
                 random_state: int | None = 0) -> None:
        super().__init__(alpha=alpha, min_samples=min_samples, max_samples=max_samples,
                         random_state=random_state)
        self.ridge = ridge
        self.n_folds = n_folds
        self.n_permutations = n_permutations
        self.tails = tails
        self.estimator = estimator
        self.test_size = test_size

    def _fit(self, reference: NDArray[Any]) -> None:
        pass

    def _test(self, reference: NDArray[Any], current: NDArray[Any],
              rng: np.random.Generator) -> Outcome:
        x = np.vstack([reference, current])
        y = np.r_[np.zeros(len(reference), dtype=int), np.ones(len(current), dtype=int)]
        seed = int(rng.integers(2**31 - 1))
        if self.estimator is not None:
            auc, p_value, details = self._holdout(x, y, seed)
        else:
            auc, p_value, details = self._ridge_permutation(x, y, seed, rng)
        return Outcome(statistic=auc, p_value=p_value, effect_size=2 * auc - 1, details={
            "auc": auc, **details, "effect_size": "2 AUC - 1 (Gini)"})

    def _ridge_permutation(self, x: NDArray[np.float64], y: NDArray[np.int_], seed: int,
                           rng: np.random.Generator) -> tuple[float, float, dict[str, Any]]:
        splitter = StratifiedKFold(n_splits=self.n_folds, shuffle=True, random_state=seed)
        splits = list(splitter.split(x, y))
        folds = np.empty(len(y), dtype=int)
        for k, (_, held) in enumerate(splits):
            folds[held] = k
        labels = fold_permutations(y, folds, self.n_permutations, rng)
        counts = FoldCounts(labels.shape[1], tuple(self.tails))
        ridge = RidgeFolds(x, labels, self.ridge)
        for _, held in splits:
            counts.add(ridge.scores(held), labels[held])
        p_value, parts = counts.p_value()
        return float(counts.u[0] / counts.pairs), p_value, {
            "model": f"ridge classifier (ridge={self.ridge:g})", "n_folds": self.n_folds,
            "n_permutations": self.n_permutations, **parts,
            "p_value_method": "smallest p of the AUC and the top-share counts, calibrated on "
                              "label permutations within folds, refitted"}

    def _holdout(self, x: NDArray[np.float64], y: NDArray[np.int_],
                 seed: int) -> tuple[float, float, dict[str, Any]]:
        x_fit, x_held, y_fit, y_held = train_test_split(
            x, y, test_size=self.test_size, stratify=y, random_state=seed)
        model = clone(self.estimator)
        if "random_state" in model.get_params():
            model.set_params(random_state=seed)
        model.fit(x_fit, y_fit)
        scores = (model.predict_proba(x_held)[:, 1] if hasattr(model, "predict_proba")
                  else model.decision_function(x_held))
        test = stats.mannwhitneyu(scores[y_held == 1], scores[y_held == 0],
                                  alternative="greater")
        n1, n0 = int(y_held.sum()), int((1 - y_held).sum())
        return float(test.statistic) / (n1 * n0), float(test.pvalue), {
            "model": type(self.estimator).__name__, "test_size": self.test_size,
            "p_value_method": "Mann-Whitney on one held-out split"}
