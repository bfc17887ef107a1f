"""Training the trainable head: texts' embeddings plus labels in, a fitted linear head and its
evaluation out. Pure functions, no I/O (saving and loading live in trainable_head.py).

Choices, made for a head that has to work on traffic unlike its training set:
- Light text normalisation before embedding (`normalise_text`): HTML entities decoded, URLs,
  @mentions and retweet markers dropped, hashtags kept as words, runs of one character
  squashed to two, whitespace collapsed, lower case. It removes what is specific to one
  source (tweets) and keeps words.
- Weighted logistic regression on the unit-length embeddings (`balanced_weights`: classes
  equal, sources by the square root of their size, rows by their label's importance), its
  inverse regularisation C chosen on a validation split stratified by source and label by
  weighted log loss with the one-standard-error rule (the smallest C, the strongest
  regularisation, whose loss is within one standard error of the best), then refitted on
  train+validation.
- Combined with a companion model trained elsewhere (the profanity model) wherever the
  companion knows something of the label (`choose_combination`): measured across sources, a
  head alone learns its source's notion of toxic, and the combination is what carries to
  text it never saw (docs/watchers.md).
- Class balance makes the probability prior-neutral: P(positive) as if both classes were
  equally common. A probability calibrated to the training set's base rate (83% positives in
  Davidson's tweets, well under 1% in most LLM traffic) would mean nothing on another stream;
  the balanced one means the same wherever the text comes from. The validation metrics record
  the training prior and a calibration check under balanced weights.
- The threshold is chosen on the validation split. Default rule "balanced": the point of the
  ROC curve that maximises TPR - FPR (Youden's J), which does not depend on how common the
  positives are. "f1" maximises F1 on the validation split (tied to its base rate);
  "precision:0.9" takes the lowest threshold with at least that validation precision,
  "recall:0.95" the highest with at least that validation recall. Each is then moved to the
  middle of the gap between it and the next validation score below (`_centred`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
THRESHOLD_RULES = ("balanced", "f1", "precision:P", "recall:R")
# How the head combines with a companion model (the profanity model), most general first:
# the mean of the two logits leans on both, the max flags what either flags, none is the head.
COMBINE_RULES = ("logit_mean", "max", "none")
# "auto" keeps the companion where its own weighted validation AUROC reaches this ...
COMPANION_MIN_AUROC = 0.6
# ... by logit_mean if that is within this of the best rule's AUROC, else by the better of
# max and logit_mean.
COMBINE_SLACK = 0.01

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@\w+:?")
_RETWEET = re.compile(r"(?<!\w)RT(?=\s|:|$):?", re.IGNORECASE)
_HASHTAG = re.compile(r"(?<![\w#])#(?=\w)")
_REPEAT = re.compile(r"(\S)\1{2,}")
_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """What every text goes through before the head's embedder, in training and scoring."""
    text = html.unescape(html.unescape(text))
    text = _URL.sub(" ", text)
    text = _RETWEET.sub(" ", text)
    text = _MENTION.sub(" ", text)
    text = _HASHTAG.sub("", text)
    text = _REPEAT.sub(r"\1\1", text)
    return _SPACE.sub(" ", text).strip().lower()


@dataclass
class LinearHead:
    """sigmoid(x · coef + intercept): a logistic-regression head, stored as plain arrays."""

    coef: np.ndarray
    intercept: float

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = np.asarray(x, dtype=np.float64) @ self.coef.astype(np.float64) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))  # type: ignore[no-any-return]


def combine_scores(head: np.ndarray, companion: np.ndarray | None, rule: str) -> np.ndarray:
    """The head's probability combined with a companion model's (see COMBINE_RULES)."""
    h = np.asarray(head, dtype=np.float64)
    if rule == "none" or companion is None:
        return h
    c = np.asarray(companion, dtype=np.float64)
    if rule == "max":
        return np.maximum(h, c)  # type: ignore[no-any-return]
    if rule == "logit_mean":
        return 1.0 / (1.0 + np.exp(-(_logit(h) + _logit(c)) / 2))  # type: ignore[no-any-return]
    raise ValueError(f"combine rule {rule!r}: expected one of {', '.join(COMBINE_RULES)}")


@dataclass
class TrainResult:
    head: LinearHead
    threshold: float
    threshold_rule: str
    c: float
    metrics: dict[str, Any] = field(default_factory=dict)
    combine: str = "none"  # how the head's score is combined with the companion's


def check_labels(labels: Sequence[int]) -> np.ndarray:
    y = np.asarray(labels, dtype=np.int64)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    counts = np.bincount(y, minlength=2)
    if counts.min() < 4:
        raise ValueError(f"need at least 4 examples of each class to train and validate, got "
                         f"{int(counts[0])} negatives and {int(counts[1])} positives")
    return y


def check_threshold_rule(rule: str) -> None:
    """Before any work: balanced, f1, or precision:P / recall:R with 0 < P, R <= 1."""
    kind, _, value = rule.partition(":")
    try:
        ok = (kind in ("balanced", "f1") and not value) or (
            kind in ("precision", "recall") and 0 < float(value) <= 1)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"threshold rule {rule!r}: expected one of {', '.join(THRESHOLD_RULES)} "
                         "(P, R in (0, 1])")


def split_rows(y: np.ndarray, sources: np.ndarray, validation: float, seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows), stratified by source and label where every cell has
    two rows, else by label. Deterministic in the seed, so a tuned encoder and the head
    after it see the same split."""
    from sklearn.model_selection import train_test_split

    strata = np.asarray([f"{s}\x1f{label}" for s, label in zip(sources, y, strict=True)])
    _, cell_counts = np.unique(strata, return_counts=True)
    train_rows, val_rows = train_test_split(
        np.arange(len(y)), test_size=validation, random_state=seed,
        stratify=strata if cell_counts.min() >= 2 else y)
    return train_rows, val_rows


def fit_linear(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float, seed: int) -> LinearHead:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    model.fit(x, y, sample_weight=w * (len(w) / w.sum()))
    return LinearHead(model.coef_[0].astype(np.float32), float(model.intercept_[0]))


def balanced_weights(y: np.ndarray, sources: np.ndarray, importance: np.ndarray) -> np.ndarray:
    """Per-row training weights, mean 1: both classes weigh the same in all (prior-neutral
    probabilities); within a class each source weighs in proportion to the square root of
    its rows (a small source, such as a few hundred reviewed flags, is heard without drowning
    a large one); within a source and class, rows weigh by their importance (--positive 0:5)."""
    w = np.zeros(len(y), dtype=np.float64)
    for label in (0, 1):
        in_class = y == label
        names, counts = np.unique(sources[in_class], return_counts=True)
        shares = np.sqrt(counts) / np.sqrt(counts).sum()
        for name, share in zip(names, shares, strict=True):
            cell = in_class & (sources == name)
            w[cell] = share * importance[cell] / importance[cell].sum()
    scaled: np.ndarray = w * (len(y) / w.sum())
    return scaled


def _auroc(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p, sample_weight=w)) if 0 < y.sum() < len(y) else None


def choose_combination(y: np.ndarray, head: np.ndarray, companion: np.ndarray | None,
                       w: np.ndarray, combine: str) -> tuple[str, dict[str, float | None]]:
    """The combine rule on validation scores: a fixed one, or for "auto": the head alone
    where the companion knows nothing of this label (its own weighted AUROC under
    COMPANION_MIN_AUROC: a head for another label than toxicity), otherwise `logit_mean` if
    it is within COMBINE_SLACK of the best rule, else the better of `max` and `logit_mean`.
    A head fitted to one source ranks that source best alone, and validation rows of that
    source cannot show what the companion is for: text the head never saw. Measured
    (docs/watchers.md), dropping it there cost 0.37 AUROC on the other source to gain
    0.01-0.02 on the head's own."""
    if companion is None or combine == "none":
        return "none", {}
    scores = {rule: _auroc(y, combine_scores(head, companion, rule), w) for rule in
              COMBINE_RULES}
    scores["companion"] = _auroc(y, companion, w)
    if combine != "auto":
        return combine, scores
    if scores["companion"] is None:
        return "logit_mean", scores
    if scores["companion"] < COMPANION_MIN_AUROC:
        return "none", scores
    best = max(v for v in scores.values() if v is not None)
    if (scores["logit_mean"] or 0.0) >= best - COMBINE_SLACK:
        return "logit_mean", scores
    return max(("max", "logit_mean"), key=lambda rule: scores[rule] or 0.0), scores


def choose_threshold(y: np.ndarray, p: np.ndarray, rule: str) -> float:
    """A threshold on validation scores by the rule (see the module docstring), centred in
    the gap below it."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    if rule == "balanced":
        fpr, tpr, thresholds = roc_curve(y, p)
        best = int(np.argmax(tpr - fpr))
        return _centred(p, float(min(max(thresholds[best], 0.0), 1.0)))
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]
    if rule == "f1":
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        return _centred(p, float(thresholds[int(np.argmax(f1))]))
    if rule.startswith("precision:"):
        target = float(rule.split(":", 1)[1])
        ok = np.flatnonzero(precision >= target)
        return _centred(p, float(thresholds[ok[0]]) if ok.size else float(thresholds[-1]))
    if rule.startswith("recall:"):
        target = float(rule.split(":", 1)[1])
        ok = np.flatnonzero(recall >= target)
        return _centred(p, float(thresholds[ok[-1]]) if ok.size else float(thresholds[0]))
    raise ValueError(f"threshold rule {rule!r}: expected one of {', '.join(THRESHOLD_RULES)}")


def _centred(p: np.ndarray, threshold: float) -> float:
    """Every threshold between the chosen one (a validation score) and the next score below
    it splits the validation rows alike. The chosen one sits on the lowest flagged score, the
    edge of the gap; its middle leaves a margin both ways. On thousands of rows the gap is
    tiny; on the few dozen reviewed flags of a retraining it is not."""
    below = p[p < threshold]
    return float((threshold + below.max()) / 2) if below.size else threshold


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUROC, average precision, P/R/F1 and the confusion counts at the threshold."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    both = 0 < int(y.sum()) < len(y)
    predicted = p >= threshold
    tp = int((predicted & (y == 1)).sum())
    fp = int((predicted & (y == 0)).sum())
    fn = int((~predicted & (y == 1)).sum())
    tn = int((~predicted & (y == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    tpr, tnr = recall, (tn / (tn + fp) if tn + fp else 0.0)
    return {
        "n": len(y), "positives": int(y.sum()),
        "auroc": float(roc_auc_score(y, p)) if both else None,
        "average_precision": float(average_precision_score(y, p)) if both else None,
        "threshold": float(threshold), "precision": precision, "recall": recall, "f1": f1,
        "balanced_accuracy": (tpr + tnr) / 2,
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
    }


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10,
                      weights: np.ndarray | None = None) -> dict[str, Any]:
    """Equal-width bins over [0, 1]: mean predicted, observed positive rate and count per bin,
    and the expected calibration error (count-weighted |observed - predicted|)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=np.float64)
    index = np.minimum((p * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        row: dict[str, Any] = {"bin": b, "lower": b / bins, "upper": (b + 1) / bins,
                               "count": count, "mean_predicted": None, "observed_rate": None}
        if count:
            weight = w[inside]
            row["mean_predicted"] = float(np.average(p[inside], weights=weight))
            row["observed_rate"] = float(np.average(y[inside], weights=weight))
            ece += weight.sum() * abs(row["observed_rate"] - row["mean_predicted"])
        rows.append(row)
    return {"bins": rows, "ece": float(ece / w.sum()) if len(p) else None}


def train_head(x: np.ndarray, labels: Sequence[int], *, weights: Sequence[float] | None = None,
               sources: Sequence[str] | None = None, companion: Sequence[float] | None = None,
               combine: str = "auto", validation: float = 0.2, seed: int = 0,
               c_grid: Sequence[float] = C_GRID, threshold_rule: str = "balanced"
               ) -> TrainResult:
    """Fit the head on embeddings `x` (n, dim) and 0/1 labels: a train/validation split
    stratified by source and label, rows weighted by `balanced_weights`, C by weighted
    validation log loss (one-standard-error rule), the combination with `companion` (a
    source-independent model's probabilities per row, or None) by `choose_combination`, the
    threshold by the rule on the combined validation scores, refit on all rows. The metrics
    are those of the train-only fit on the validation rows, overall and per source."""
    y = check_labels(labels)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"embeddings {x.shape} do not match {len(y)} labels")
    check_threshold_rule(threshold_rule)
    if combine not in (*COMBINE_RULES, "auto"):
        raise ValueError(f"combine {combine!r}: expected auto or one of "
                         f"{', '.join(COMBINE_RULES)}")
    source = np.asarray(sources if sources is not None else [""] * len(y), dtype=object)
    importance = np.asarray(weights if weights is not None else np.ones(len(y)),
                            dtype=np.float64)
    other = None if companion is None else np.asarray(companion, dtype=np.float64)
    if len(source) != len(y) or len(importance) != len(y) or (
            other is not None and len(other) != len(y)):
        raise ValueError("weights, sources and companion scores need one value per label")
    train_rows, val_rows = split_rows(y, source, validation, seed)
    w_train = balanced_weights(y[train_rows], source[train_rows], importance[train_rows])
    w_val = balanced_weights(y[val_rows], source[val_rows], importance[val_rows])
    search = []
    for c in sorted(c_grid):
        head = fit_linear(x[train_rows], y[train_rows], w_train, c, seed)
        p = np.clip(head.predict_proba(x[val_rows]), 1e-7, 1 - 1e-7)
        losses = -np.where(y[val_rows] == 1, np.log(p), np.log(1 - p)) * w_val
        search.append({"c": c, "val_log_loss_balanced": float(losses.mean()),
                       "se": float(losses.std(ddof=1) / np.sqrt(len(losses))),
                       "val_auroc": _auroc(y[val_rows], p, w_val), "head": head, "p": p})
    # one-standard-error rule: the strongest regularisation within one standard error of the
    # best validation loss; it gives up nothing measurable here and fits one source less
    lowest = min(search, key=lambda s: s["val_log_loss_balanced"])
    best = next(s for s in search
                if s["val_log_loss_balanced"] <= lowest["val_log_loss_balanced"] + lowest["se"])
    other_val = None if other is None else other[val_rows]
    rule, combined_auroc = choose_combination(y[val_rows], best["p"], other_val, w_val, combine)
    p_val = combine_scores(best["p"], other_val, rule)
    threshold = choose_threshold(y[val_rows], p_val, threshold_rule)
    metrics = binary_metrics(y[val_rows], p_val, threshold)
    metrics["auroc_weighted"] = _auroc(y[val_rows], p_val, w_val)
    metrics["combine"] = {"rule": rule, "asked": combine, "val_auroc_weighted": combined_auroc}
    metrics["split"] = {"train": len(train_rows), "validation": len(val_rows), "seed": seed,
                        "stratified": True}
    metrics["training_prior"] = float(y.mean())
    metrics["calibration"] = calibration_table(y[val_rows], p_val)
    metrics["calibration_balanced"] = calibration_table(y[val_rows], p_val, weights=w_val)
    metrics["thresholds"] = {r: choose_threshold(y[val_rows], p_val, r)
                             for r in ("balanced", "f1", "precision:0.9", "recall:0.95")}
    names = sorted(set(source.tolist()))
    if len(names) > 1:
        metrics["sources"] = {
            str(name): binary_metrics(y[val_rows][in_source], p_val[in_source], threshold)
            for name in names if (in_source := source[val_rows] == name).any()}
    metrics["c_search"] = [{k: v for k, v in s.items() if k not in ("head", "p")}
                           for s in search]
    train_fit = best["head"]
    metrics["train_auroc"] = binary_metrics(
        y[train_rows], train_fit.predict_proba(x[train_rows]), threshold)["auroc"]
    final = fit_linear(x, y, balanced_weights(y, source, importance), best["c"], seed)
    return TrainResult(final, threshold, threshold_rule, float(best["c"]), metrics, rule)
