"""Drift detectors: has production traffic changed since the reference?

Embeddings (n x d): `MMDDetector`, `ClassifierDetector`, `PCAKSDetector`. Scalars and
categories: `KSDetector`, `PSIDetector`, `ChiSquaredDetector`, and `detect_signals` /
`detect_scopes` for many signals at once. All follow one contract (`base.Detector`):
`Detector(**params).fit(reference).test(current) -> DetectorResult`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watchkeeper.detectors.drift.base import Detector, DriftDetector, subsample
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
    )
    from watchkeeper.detectors.result import DetectorResult

# Loaded on first use, so that `drift.options` and `drift.registry` (what the config reads)
# come without numpy, scipy and scikit-learn.
_WHERE = {
    "Detector": "base", "DriftDetector": "base", "ClassifierDetector": "classifier",
    "MMDDetector": "mmd", "PCAKSDetector": "pca_ks", "DETECTORS": "registry",
    "build": "registry", "names": "registry", "ChiSquaredDetector": "scalar",
    "KSDetector": "scalar", "PSIDetector": "scalar", "Signal": "signals",
    "detect_scopes": "signals", "detect_signals": "signals", "Window": "windows",
    "compare_windows": "windows", "current_window": "windows", "in_window": "windows",
    "reference_window": "windows", "subsample": "base",
}


def __getattr__(name: str) -> Any:
    if name == "DetectorResult":
        from watchkeeper.detectors.result import DetectorResult

        return DetectorResult
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


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
