"""Drift detectors: has production traffic changed since the reference?

Embeddings (n x d): `MMDDetector`, `ClassifierDetector`, `PCAKSDetector`. Scalars and
categories: `KSDetector`, `PSIDetector`, `ChiSquaredDetector`, and `detect_signals` /
`detect_scopes` for many signals at once. All follow one contract (`base.Detector`):
`Detector(**params).fit(reference).test(current) -> DetectorResult`.
"""

from watchkeeper.detectors.drift.base import Detector, DriftDetector
from watchkeeper.detectors.drift.classifier import ClassifierDetector
from watchkeeper.detectors.drift.mmd import MMDDetector
from watchkeeper.detectors.drift.pca_ks import PCAKSDetector
from watchkeeper.detectors.drift.registry import DETECTORS, build, names
from watchkeeper.detectors.drift.scalar import ChiSquaredDetector, KSDetector, PSIDetector
from watchkeeper.detectors.drift.signals import Signal, detect_scopes, detect_signals
from watchkeeper.detectors.drift.windows import (
    Window,
    compare_windows,
    current_window,
    in_window,
    reference_window,
    subsample,
)
from watchkeeper.detectors.result import DetectorResult

__all__ = [
    "DETECTORS",
    "ChiSquaredDetector",
    "ClassifierDetector",
    "Detector",
    "DetectorResult",
    "DriftDetector",
    "KSDetector",
    "MMDDetector",
    "PCAKSDetector",
    "PSIDetector",
    "Signal",
    "Window",
    "build",
    "compare_windows",
    "current_window",
    "detect_scopes",
    "detect_signals",
    "in_window",
    "names",
    "reference_window",
    "subsample",
]
