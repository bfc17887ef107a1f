"""Drift detectors by name, as config entries and `--detector NAME` refer to them."""

from __future__ import annotations

from typing import Any

from watchkeeper.detectors.drift.base import DriftDetector
from watchkeeper.detectors.drift.classifier import ClassifierDetector
from watchkeeper.detectors.drift.mmd import MMDDetector
from watchkeeper.detectors.drift.pca_ks import PCAKSDetector
from watchkeeper.detectors.drift.scalar import ChiSquaredDetector, KSDetector, PSIDetector

DETECTORS: dict[str, type[DriftDetector]] = {
    cls.name: cls for cls in (MMDDetector, ClassifierDetector, PCAKSDetector, KSDetector,
                              PSIDetector, ChiSquaredDetector)}


def names(kind: str | None = None) -> list[str]:
    """Detector names, optionally only those for one input kind ("embedding", ...)."""
    return [name for name, cls in DETECTORS.items() if kind is None or cls.kind == kind]


def build(name: str, **params: Any) -> DriftDetector:
    """A detector from its name and parameters; unknown names and parameters fail clearly."""
    cls = DETECTORS.get(name)
    if cls is None:
        raise ValueError(f"unknown drift detector {name!r} (known: {', '.join(DETECTORS)})")
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"drift detector {name!r}: {exc}") from exc
