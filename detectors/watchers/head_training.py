"""Training the trainable head: texts' embeddings plus labels in, a fitted linear head and its
evaluation out. Pure functions, no I/O (saving and loading live in trainable_head.py).

Choices, made for a head that has to work on traffic unlike its training set:
- Light text normalisation before embedding (`normalise_text`): HTML entities decoded, URLs,
  @mentions and retweet markers dropped, runs of one character squashed to two, whitespace
  collapsed, lower case. It removes what is specific to one source (tweets) and keeps words.
- Class-balanced logistic regression on the unit-length embeddings, its inverse
  regularisation C chosen on a stratified validation split by class-balanced log loss with
  the one-standard-error rule (the smallest C, the strongest regularisation, whose loss is
  within one standard error of the best), then refitted on train+validation.
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

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@\w+:?")
_RETWEET = re.compile(r"(?<!\w)RT(?=\s|:|$):?", re.IGNORECASE)
_REPEAT = re.compile(r"(\S)\1{2,}")
_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """What every text goes through before the head's embedder, in training and scoring."""
    text = html.unescape(html.unescape(text))
    text = _URL.sub(" ", text)
    text = _RETWEET.sub(" ", text)
    text = _MENTION.sub(" ", text)
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


@dataclass
class TrainResult:
    head: LinearHead
    threshold: float
    threshold_rule: str
    c: float
    metrics: dict[str, Any] = field(default_factory=dict)


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


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> LinearHead:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
    model.fit(x, y)
    return LinearHead(model.coef_[0].astype(np.float32), float(model.intercept_[0]))


def _balanced_weights(y: np.ndarray) -> np.ndarray:
    counts = np.bincount(y, minlength=2).astype(np.float64)
    weights: np.ndarray = np.where(y == 1, len(y) / (2 * counts[1]), len(y) / (2 * counts[0]))
    return weights


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


def train_head(x: np.ndarray, labels: Sequence[int], *, validation: float = 0.2,
               seed: int = 0, c_grid: Sequence[float] = C_GRID,
               threshold_rule: str = "balanced") -> TrainResult:
    """Fit the head on embeddings `x` (n, dim) and 0/1 labels: stratified train/validation
    split, C by validation log loss (class-balanced, one-standard-error rule), threshold by
    the rule on validation, refit on all rows. The metrics are those of the train-only fit
    on the validation rows."""
    from sklearn.model_selection import train_test_split

    y = check_labels(labels)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"embeddings {x.shape} do not match {len(y)} labels")
    check_threshold_rule(threshold_rule)
    rows = np.arange(len(y))
    train_rows, val_rows = train_test_split(rows, test_size=validation, stratify=y,
                                            random_state=seed)
    weights = _balanced_weights(y[val_rows])
    search = []
    for c in sorted(c_grid):
        head = _fit(x[train_rows], y[train_rows], c, seed)
        p = np.clip(head.predict_proba(x[val_rows]), 1e-7, 1 - 1e-7)
        losses = -np.where(y[val_rows] == 1, np.log(p), np.log(1 - p)) * weights
        search.append({"c": c, "val_log_loss_balanced": float(losses.mean()),
                       "se": float(losses.std(ddof=1) / np.sqrt(len(losses))),
                       "val_auroc": binary_metrics(y[val_rows], p, 0.5)["auroc"],
                       "head": head, "p": p})
    # one-standard-error rule: the strongest regularisation within one standard error of the
    # best validation loss; it gives up nothing measurable here and fits one source less
    lowest = min(search, key=lambda s: s["val_log_loss_balanced"])
    best = next(s for s in search
                if s["val_log_loss_balanced"] <= lowest["val_log_loss_balanced"] + lowest["se"])
    p_val = best["p"]
    threshold = choose_threshold(y[val_rows], p_val, threshold_rule)
    metrics = binary_metrics(y[val_rows], p_val, threshold)
    metrics["split"] = {"train": len(train_rows), "validation": len(val_rows), "seed": seed,
                        "stratified": True}
    metrics["training_prior"] = float(y.mean())
    metrics["calibration"] = calibration_table(y[val_rows], p_val)
    metrics["calibration_balanced"] = calibration_table(y[val_rows], p_val, weights=weights)
    metrics["thresholds"] = {rule: choose_threshold(y[val_rows], p_val, rule)
                             for rule in ("balanced", "f1", "precision:0.9", "recall:0.95")}
    metrics["c_search"] = [{k: v for k, v in s.items() if k not in ("head", "p")}
                           for s in search]
    train_fit = best["head"]
    metrics["train_auroc"] = binary_metrics(
        y[train_rows], train_fit.predict_proba(x[train_rows]), threshold)["auroc"]
    final = _fit(x, y, best["c"], seed)
    return TrainResult(final, threshold, threshold_rule, float(best["c"]), metrics)
