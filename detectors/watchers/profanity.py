"""Profanity (kind "profanity"): the scikit-learn model that the PyPI package
alt-profanity-check ships (a TF-IDF bag of words and a calibrated linear SVM, trained on
tweets and Wikipedia comments), label "profanity" = its P(profane).

It needs no torch and no weights from anywhere, scores thousands of texts per second on one
core, and so serves as the offline baseline in `eval-watcher` and as the default toxicity
screen where no model weights are available. It knows words, not meaning: it misses insults
without swear words and flags harmless swearing (see docs/watchers.md for how it compares with
the trainable head).

The package loads its model with joblib (a pickle) from its own installed files at import;
it is as trusted as the package itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from watchkeeper.detectors.watchers.base import Item, WatcherLoadError, WatcherSpec
from watchkeeper.detectors.watchers.options import ProfanityOptions

LABEL = "profanity"


class ProfanityCheck:
    labels: tuple[str, ...] = (LABEL,)
    device: str = "cpu"

    def __init__(self, spec: WatcherSpec, options: ProfanityOptions | None = None) -> None:
        options = ProfanityOptions.of(spec) if options is None else options
        self.name = spec.name
        # The threshold that the package's own predict() applies.
        self.default_thresholds = {LABEL: 0.5}
        try:
            from profanity_check import profanity_check as module
        except ImportError as exc:
            raise WatcherLoadError(f"watcher {spec.name!r} (profanity) needs the PyPI package "
                                   f"alt-profanity-check ({exc})") from exc
        self._vectorizer = module.vectorizer
        self._model = module.model
        try:
            package = version("alt-profanity-check")
        except PackageNotFoundError:
            package = "unknown"
        self.version = f"alt-profanity-check {package}"
        self.max_batch = options.max_batch

    def score(self, items: Sequence[Item]) -> list[dict[str, float]]:
        return [{LABEL: value} for value in self.predict_proba([item.text for item in items])]

    def predict_proba(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        probabilities = self._model.predict_proba(self._vectorizer.transform(list(texts)))
        return [float(p) for p in probabilities[:, 1]]
