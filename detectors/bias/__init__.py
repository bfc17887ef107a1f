"""Bias detectors: does a model, or a watcher, treat groups of people differently?

`Lexicon` tags the groups a text mentions; `GroupDisparity` tests a metric (watcher score,
refusal rate, answer length) across those groups; `CounterfactualProbe` swaps group words in
texts and measures how far a scorer's score moves. All return `DetectorResult`s.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watchkeeper.detectors.bias.counterfactual import (
        CounterfactualProbe,
        Scorer,
        Swapper,
        watcher_scorer,
        watcher_scorers,
    )
    from watchkeeper.detectors.bias.disparity import GroupDisparity
    from watchkeeper.detectors.bias.lexicon import Axis, Lexicon
    from watchkeeper.detectors.result import DetectorResult

# Loaded on first use, so that `bias.options` (what the config reads) comes without numpy and
# scipy.
_WHERE = {
    "CounterfactualProbe": "bias.counterfactual", "Scorer": "bias.counterfactual",
    "Swapper": "bias.counterfactual", "watcher_scorer": "bias.counterfactual",
    "watcher_scorers": "bias.counterfactual", "GroupDisparity": "bias.disparity",
    "Axis": "bias.lexicon", "Lexicon": "bias.lexicon", "DetectorResult": "result",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"watchkeeper.detectors.{module}"), name)


__all__ = ["Axis", "CounterfactualProbe", "DetectorResult", "GroupDisparity", "Lexicon",
           "Scorer", "Swapper", "watcher_scorer", "watcher_scorers"]
