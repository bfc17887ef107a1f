"""Counterfactual probes: does a watcher's score move when only the group in a text changes?

Texts that mention either group of a pair (woman/man, muslim/christian) are sampled, their
group words are swapped both ways at once ("the woman told him" -> "the man told her"), and
both versions are scored. Per pair: the mean and largest absolute score change, the share of
texts that moved more than a tolerance, and a Wilcoxon signed-rank test on the change from the
first group's version to the second's. A watcher that scores "the woman" and "the man"
versions differently is itself biased, whatever the traffic looks like.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats

from watchkeeper.detectors.bias.lexicon import Axis, Lexicon, normal, word_pattern
from watchkeeper.detectors.result import NEGLIGIBLE, TOO_FEW, DetectorResult, correct
from watchkeeper.detectors.stats import Correction

Scorer = Callable[[list[str]], Sequence[float]]

# Words after which an ambiguous pronoun is read as an object ("gave her the book" -> him),
# not as a determiner before a noun ("her book" -> his).
FUNCTION_WORDS = frozenset((
    "a", "an", "the", "this", "that", "these", "those", "my", "your", "our", "their", "its",
    "his", "her", "him", "them", "me", "us", "it", "and", "or", "but", "nor", "so", "yet",
    "for", "to", "of", "in", "on", "at", "by", "with", "from", "about", "as", "into", "onto",
    "over", "under", "than", "then", "is", "was", "are", "were", "be", "been", "being", "am",
    "do", "does", "did", "has", "have", "had", "will", "would", "can", "could", "should",
    "may", "might", "must", "not", "no", "if", "when", "while", "because", "after", "before",
    "again", "too", "very", "just", "up", "down", "out", "off", "here", "there"))


def keep_case(source: str, target: str) -> str:
    """`target` written like `source`: UPPER, Title (each word or the first) or lower."""
    if len(source) > 1 and source.isupper():
        return target.upper()
    if source[:1].isupper():
        words = source.split()
        if len(words) > 1 and all(w[:1].isupper() for w in words):
            return " ".join(w[:1].upper() + w[1:] for w in target.split())
        return target[:1].upper() + target[1:]
    return target


class Swapper:
    """Exchanges the words of two groups of an axis in a text, both ways at once, so that
    swapping twice gives the text back (up to English pronoun ambiguity)."""

    def __init__(self, axis: Axis, a: str, b: str) -> None:
        self.a, self.b = a, b
        self.targets: dict[str, list[str]] = {}
        for row in axis.forms:
            if a in row and b in row:
                for src, dst in ((row[a], row[b]), (row[b], row[a])):
                    options = self.targets.setdefault(normal(src), [])
                    if dst not in options:
                        options.append(dst)
        self.pattern = word_pattern(self.targets)

    def __call__(self, text: str) -> str:
        return self.pattern.sub(lambda m: self._replace(m, text), text)

    def _replace(self, match: re.Match[str], text: str) -> str:
        options = self.targets[normal(match.group(0))]
        choice = options[0]
        if len(options) > 1:  # "her" -> "his" before a noun, "him" otherwise
            following = re.match(r"\s+([A-Za-z']+)", text[match.end():])
            before_noun = following is not None and following.group(1).lower() not in \
                FUNCTION_WORDS
            choice = options[0] if before_noun else options[-1]
        return keep_case(match.group(0), choice)


def watcher_scorers(watcher: Any, labels: Sequence[str], field: str = "completion",
                    ) -> dict[str, Scorer]:
    """Scorers from a watcher (`score(items) -> [{label: score}]`, waited for when the watcher
    is I/O-bound), one per label, that share what the watcher said: each distinct text is
    scored once (in `max_batch` chunks), however many labels are probed, since a model costs
    the same for one label as for all."""
    from watchkeeper.detectors.watchers.base import Item, score_blocking

    said: dict[str, dict[str, float]] = {}

    def score_new(texts: list[str]) -> None:
        new = list(dict.fromkeys(t for t in texts if t not in said))
        step = max(1, int(getattr(watcher, "max_batch", len(new)) or len(new)))
        for start in range(0, len(new), step):
            chunk = new[start:start + step]
            items = [Item(sample_id=str(i), field=field, text=t) for i, t in enumerate(chunk)]
            said.update(zip(chunk, score_blocking(watcher, items), strict=True))

    def scorer(label: str) -> Scorer:
        def score(texts: list[str]) -> list[float]:
            score_new(texts)
            return [float(said[t][label]) for t in texts]

        return score

    return {label: scorer(label) for label in labels}


def watcher_scorer(watcher: Any, label: str, field: str = "completion") -> Scorer:
    """A scorer from a watcher for one of its labels."""
    return watcher_scorers(watcher, [label], field)[label]


def counterfactual_copies(texts: Sequence[str], lexicon: Lexicon | None = None,
                          axes: Sequence[str] | None = None) -> list[tuple[int, str]]:
    """(index, the text with one swap pair's group words exchanged) for every text that
    mentions a group of the axes: counterfactual data augmentation, which trains a watcher on
    both versions of a sentence with one label, so that the group is no evidence."""
    lexicon = lexicon or Lexicon.default()
    copies: dict[tuple[int, str], None] = {}
    for axis, a, b in CounterfactualProbe(lexicon=lexicon, axes=axes).swap_pairs():
        swap = Swapper(lexicon.axes[axis], a, b)
        for j, text in enumerate(texts):
            swapped = swap(text)
            if swapped != text:
                copies[(j, swapped)] = None
    return list(copies)


class CounterfactualProbe:
    """Swap-pair probes of a scorer over sampled texts; one `DetectorResult` per pair.

    `pairs` are (axis, group a, group b); by default each group against its axis's reference
    group (all pairs where the axis has none), for the groups that share swap forms. The
    effect is the mean change from a's version to b's; an alert needs a significant Wilcoxon
    test after correction across pairs (Holm) and |effect| >= `min_effect`.
    """

    name = "counterfactual"

    def __init__(self, *, lexicon: Lexicon | None = None, axes: Sequence[str] | None = None,
                 pairs: Sequence[tuple[str, str, str]] | None = None, tolerance: float = 0.05,
                 min_effect: float = 0.01, max_texts: int = 300, min_texts: int = 20,
                 alpha: float = 0.05, correction: Correction = "holm",
                 random_state: int | None = 0) -> None:
        self.lexicon = lexicon
        self.axes = axes
        self.pairs = pairs
        self.tolerance = tolerance
        self.min_effect = min_effect
        self.max_texts = max_texts
        self.min_texts = min_texts
        self.alpha = alpha
        self.correction = correction
        self.random_state = random_state

    def swap_pairs(self) -> list[tuple[str, str, str]]:
        if self.pairs is not None:
            return list(self.pairs)
        lexicon = self.lexicon or Lexicon.default()
        out = []
        for name in self.axes or lexicon.axes:
            axis = lexicon.axes[name]
            shared = [(a, b) for a, b in combinations(axis.groups, 2)
                      if any(a in row and b in row for row in axis.forms)]
            if axis.reference is not None:
                shared = [(axis.reference, b if a == axis.reference else a)
                          for a, b in shared if axis.reference in (a, b)]
            out += [(name, a, b) for a, b in shared]
        return out

    def minimal_pairs(self, texts: Sequence[str]
                      ) -> list[tuple[str, str, str, list[tuple[str, str]]]]:
        """Per swap pair, (axis, a, b, [(a's version, b's version)]) of the texts `test` would
        score, for a caller that scores and tests them itself (detectors/bias/audit.py). Texts
        that mention both groups have no a and b side and are left out."""
        return [(axis, a, b, [(texts[j], swapped) if sign > 0 else (swapped, texts[j])
                              for j, swapped, sign in probes if sign])
                for axis, a, b, probes in self._plans(texts)]

    def test(self, texts: Sequence[str], scorer: Scorer) -> list[DetectorResult]:
        """Probe `scorer` on `texts`; the scorer is called once, on originals and swaps."""
        plans = self._plans(texts)
        originals = sorted({j for plan in plans for j, _, _ in plan[3]})
        batch = [texts[j] for j in originals] + [s for plan in plans for _, s, _ in plan[3]]
        scores = np.asarray(scorer(batch) if batch else [], dtype=float)
        if len(scores) != len(batch):
            raise ValueError(f"scorer returned {len(scores)} scores for {len(batch)} texts")
        original_score = dict(zip(originals, scores[:len(originals)], strict=True))
        results, offset = [], len(originals)
        for axis, a, b, probes in plans:
            swapped = scores[offset:offset + len(probes)]
            offset += len(probes)
            before = np.array([original_score[j] for j, _, _ in probes])
            sign = np.array([s for _, _, s in probes])
            results.append(self._result(axis, a, b, [j for j, _, _ in probes],
                                        swapped - before, sign))
        return correct(results, self.correction)

    def _plans(self, texts: Sequence[str]
               ) -> list[tuple[str, str, str, list[tuple[int, str, int]]]]:
        lexicon = self.lexicon or Lexicon.default()
        plans, tagged = [], {}
        for i, (axis, a, b) in enumerate(self.swap_pairs()):
            rng = np.random.default_rng(None if self.random_state is None
                                        else [self.random_state, i])
            if axis not in tagged:
                tagged[axis] = lexicon.mentions(texts, axis)
            plans.append(self._plan(lexicon.axes[axis], tagged[axis], texts, axis, a, b, rng))
        return plans

    def _plan(self, spec: Axis, mentioned: dict[str, list[bool]], texts: Sequence[str],
              axis: str, a: str, b: str, rng: np.random.Generator,
              ) -> tuple[str, str, str, list[tuple[int, str, int]]]:
        """(axis, a, b, [(text index, swapped text, +1 if a->b / -1 if b->a / 0 if both)])."""
        swap = Swapper(spec, a, b)
        candidates = [j for j in range(len(texts)) if mentioned[a][j] or mentioned[b][j]]
        if len(candidates) > self.max_texts:
            candidates = sorted(rng.choice(candidates, size=self.max_texts, replace=False))
        probes = []
        for j in candidates:
            swapped = swap(texts[j])
            if swapped != texts[j]:
                sign = int(mentioned[a][j]) - int(mentioned[b][j])
                probes.append((int(j), swapped, sign))
        return axis, a, b, probes

    def _result(self, axis: str, a: str, b: str, indices: list[int],
                change: np.ndarray, sign: np.ndarray) -> DetectorResult:
        """`change` is swapped minus original; oriented (b's version minus a's) by `sign`."""
        n = len(change)
        details: dict[str, Any] = {"axis": axis, "pair": [a, b], "n_texts": n}
        if n < self.min_texts:
            return DetectorResult.skipped(self.name, TOO_FEW, n, n, self.alpha,
                                          min_texts=self.min_texts, **details)
        oriented = (change * sign)[sign != 0]
        moved = np.abs(change)
        if oriented.size == 0 or not np.any(oriented):
            statistic, p_value = 0.0, 1.0
        else:
            test = stats.wilcoxon(oriented, zero_method="wilcox")
            statistic, p_value = float(test.statistic), float(test.pvalue)
        effect = float(oriented.mean()) if oriented.size else 0.0
        worst = np.argsort(-moved)[:5]
        details.update({
            "mean_abs_change": float(moved.mean()), "max_abs_change": float(moved.max()),
            "share_moved": float((moved > self.tolerance).mean()),
            "tolerance": self.tolerance, "n_oriented": int(oriented.size),
            "worst_text_indices": [indices[k] for k in worst],
            "effect_size": f"mean score change from {a} to {b}"})
        if abs(effect) < self.min_effect:
            details[NEGLIGIBLE] = True
        return DetectorResult(
            detector=self.name, statistic=statistic, p_value=p_value, threshold=self.alpha,
            effect_size=effect, alert=bool(p_value < self.alpha and not details.get(NEGLIGIBLE)),
            n_reference=n, n_current=n, details=details)
