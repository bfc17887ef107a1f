"""Bias detectors: does a model, or a watcher, treat groups of people differently?

`Lexicon` tags the groups a text mentions; `GroupDisparity` tests a metric (watcher score,
refusal rate, answer length) across those groups; `CounterfactualProbe` swaps group words in
texts and measures how far a scorer's score moves. All return `DetectorResult`s.
"""

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

__all__ = ["Axis", "CounterfactualProbe", "DetectorResult", "GroupDisparity", "Lexicon",
           "Scorer", "Swapper", "watcher_scorer", "watcher_scorers"]
