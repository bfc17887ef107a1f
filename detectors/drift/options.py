"""The options of each drift detector as a config sets them: a detector job's `params` (mmd,
classifier, pca_ks) and a signal's `params` (ks, psi, chi2). `registry.KINDS` maps each name
to its class and its model; the class's constructor takes the same keywords with the same
defaults (a test holds them equal), and the config validates every entry when it loads.

`alpha` is not among them: every test of a run uses `schedule.alpha`. `ClassifierDetector`'s
`estimator` (a scikit-learn object) is for code, not for a YAML file.

Plain pydantic on purpose: the config imports this module and the registry without numpy,
scipy or scikit-learn (the package's `__init__` loads the detectors only when they are used).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from watchkeeper.detectors.options import Options

Correction = Literal["bh", "holm", "bonferroni", "none"]
Input = Literal["embedding", "continuous", "categorical"]


class DetectorOptions(Options):
    """What every drift detector takes (alpha aside)."""

    min_samples: int = Field(30, ge=1, description="rows a side below which the test is skipped")
    max_samples: int | None = Field(None, ge=1, description="seeded subsample cap a side")
    random_state: int | None = Field(0, description="seed; null for fresh randomness")


class MMDOptions(DetectorOptions):
    n_permutations: int = Field(500, ge=1)
    bandwidth: float | None = Field(None, gt=0, description="default: the pooled median "
                                                            "distance")
    scales: tuple[float, ...] = Field((1.0,), min_length=1,
                                      description="bandwidth multiples, kernels averaged")
    max_samples: int | None = Field(2500, ge=1)


class ClassifierOptions(DetectorOptions):
    ridge: float = Field(10.0, gt=0, description="regularisation, in feature variances")
    n_folds: int = Field(5, ge=2)
    n_permutations: int = Field(500, ge=1, description="refitted permutations")
    tails: tuple[float, ...] = Field((0.02, 0.05, 0.1, 0.2),
                                     description="top shares whose current rows are counted")
    test_size: float = Field(0.3, gt=0, lt=1, description="held-out share with an estimator")
    max_samples: int | None = Field(10000, ge=1)


class PCAKSOptions(DetectorOptions):
    n_components: int = Field(20, ge=1)
    correction: Correction = "bh"
    fit_on: Literal["pooled", "reference"] = "pooled"
    max_samples: int | None = Field(20000, ge=1)


class KSOptions(DetectorOptions):
    max_samples: int | None = Field(50000, ge=1)


class PSIOptions(DetectorOptions):
    bins: int = Field(10, ge=2, description="reference-quantile bins")
    epsilon: float = Field(1e-4, gt=0, description="floor of a bin's share")
    min_psi: float = Field(0.1, ge=0, description="smallest PSI worth an alert")


class ChiSquaredOptions(DetectorOptions):
    min_expected: float = Field(5.0, ge=0, description="rarer categories pool into (other)")

