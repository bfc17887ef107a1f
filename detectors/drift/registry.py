"""Drift detectors by name, as config entries and `--detector NAME` refer to them: the one
place that maps a name to its class, the input it tests and its options model. Classes load on
first use (numpy, scipy, scikit-learn), so the config validates options without them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, NamedTuple

from watchkeeper.detectors.drift.options import (
    ChiSquaredOptions,
    ClassifierOptions,
    DetectorOptions,
    Input,
    KSOptions,
    MMDOptions,
    PCAKSOptions,
    PSIOptions,
)

if TYPE_CHECKING:
    from watchkeeper.detectors.drift.base import DriftDetector

    DETECTORS: dict[str, type[DriftDetector]]


class Kind(NamedTuple):
    target: str  # "module:Class"
    input: Input  # what it tests: embeddings, numbers or categories (the class's `kind`)
    options: type[DetectorOptions]


KINDS: dict[str, Kind] = {
    "mmd": Kind("watchkeeper.detectors.drift.mmd:MMDDetector", "embedding", MMDOptions),
    "classifier": Kind("watchkeeper.detectors.drift.classifier:ClassifierDetector", "embedding",
                       ClassifierOptions),
    "pca_ks": Kind("watchkeeper.detectors.drift.pca_ks:PCAKSDetector", "embedding",
                   PCAKSOptions),
    "ks": Kind("watchkeeper.detectors.drift.scalar:KSDetector", "continuous", KSOptions),
    "psi": Kind("watchkeeper.detectors.drift.scalar:PSIDetector", "continuous", PSIOptions),
    "chi2": Kind("watchkeeper.detectors.drift.scalar:ChiSquaredDetector", "categorical",
                 ChiSquaredOptions),
}


def detector_class(name: str) -> type[DriftDetector]:
    kind = KINDS.get(name)
    if kind is None:
        raise ValueError(f"unknown drift detector {name!r} (known: {', '.join(KINDS)})")
    module, _, cls = kind.target.partition(":")
    found: type[DriftDetector] = getattr(importlib.import_module(module), cls)
    return found


def __getattr__(attribute: str) -> Any:
    """`DETECTORS`: {name: class}, every class loaded."""
    if attribute == "DETECTORS":
        return {name: detector_class(name) for name in KINDS}
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


def names(kind: str | None = None) -> list[str]:
    """Detector names, optionally only those for one input kind ("embedding", ...)."""
    return [name for name, known in KINDS.items() if kind is None or known.input == kind]


# A signal's default test by its kind. continuous: lengths, tokens, latency, watcher scores;
# rate: per-sample booleans (error, refusal); categorical: finish reason, error type, language.
DEFAULT_TEST: dict[str, str] = {"continuous": "ks", "rate": "chi2", "categorical": "chi2"}


def signal_test(name: str, kind: str, test: str | None) -> str:
    """The test a signal of this kind runs: `test`, or the kind's default; ValueError when the
    test does not take that kind of values."""
    chosen = test or DEFAULT_TEST[kind]
    wanted = "categorical" if kind in ("rate", "categorical") else "continuous"
    if chosen not in KINDS or KINDS[chosen].input != wanted:
        raise ValueError(f"signal {name!r} ({kind}) cannot use test {chosen!r}")
    return chosen


def options_model(name: str) -> type[DetectorOptions]:
    kind = KINDS.get(name)
    if kind is None:
        raise ValueError(f"unknown drift detector {name!r} (known: {', '.join(KINDS)})")
    return kind.options


def build(name: str, **params: Any) -> DriftDetector:
    """A detector from its name and parameters; unknown names and parameters fail clearly."""
    cls = detector_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"drift detector {name!r}: {exc}") from exc
