"""Trains the prompt-injection watcher's packaged head and writes it as package data:

    detectors/watchers/prompt_injection_model.json   n-grams, idf, weights, thresholds
    detectors/watchers/prompt_injection_NOTICE       the training data's attribution

and pins the file's SHA-256 in detectors/watchers/prompt_injection.py (MODEL_SHA256).

Training data: the deepset prompt-injections train split (../shared/data/safety, Apache-2.0)
and the dev split of bench/injection/corpus.csv; never the deepset holdout or the corpus's
heldout split. Features: character 2-4-grams inside word boundaries of the folded text
(injection_rules.fold), sublinear tf, idf, L2 norm; a logistic regression (C chosen by 5-fold
cross-validated AUROC). The default threshold is chosen on out-of-fold scores of the whole
watcher (rules and head together): the lowest threshold at which at most THRESHOLD_FP of the
ordinary prompts (deepset train negatives and the corpus's ordinary_* dev rows) score at or
above it. Deterministic: same data, same file, same checksum.

    .venv/bin/python bench/train_prompt_injection.py [--safety-dir ../shared/data/safety]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
MODULE = ROOT / "detectors" / "watchers" / "prompt_injection.py"
ART = ROOT / "detectors" / "watchers"
CORPUS = ROOT / "bench" / "injection" / "corpus.csv"
DEFAULT_SAFETY = ROOT.parent / "shared" / "data" / "safety"
MAX_FEATURES = 30000
C_GRID = (3.0, 10.0)
EMB_C = 1.0
BLEND_WEIGHTS = (0.2, 0.3, 0.4, 0.5)
THRESHOLD_FP = 0.005  # on out-of-fold ordinary prompts: half the 1% goal, as margin
NOTICE = """Watchkeeper prompt-injection model (prompt_injection_model.json)

This model was trained on:

1. deepset "prompt-injections" data set, train split
   (https://huggingface.co/datasets/deepset/prompt-injections) by deepset, licensed under
   the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0). Obtained
   through the MIT-licensed mirror sinanw/llm-security-prompt-injection. The model holds
   weights derived from it (character n-gram and MiniLM-embedding logistic regressions), not
   its texts.
2. The dev split of Watchkeeper's own corpus (bench/injection/), written for this project.

Trained with bench/train_prompt_injection.py.
"""


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def training_rows(safety: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """texts, labels, whether each row is an ordinary prompt (for the threshold), and whether
    it comes from deepset."""
    texts, labels, ordinary, deepset = [], [], [], []
    for row in read_csv(safety / "deepset_prompt_injections_train.csv"):
        texts.append(row["text"])
        labels.append(int(row["label"]))
        ordinary.append(row["label"] == "0")
        deepset.append(True)
    for row in read_csv(CORPUS):
        if row["split"] != "dev":
            continue
        texts.append(row["text"])
        labels.append(int(row["label"]))
        ordinary.append(row["category"].startswith("ordinary_"))
        deepset.append(False)
    return texts, np.array(labels), np.array(ordinary), np.array(deepset)


def fit(texts: list[str], y: np.ndarray, c: float) -> tuple[object, object]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from watchkeeper.detectors.watchers.prompt_injection import analyze

    vectorizer = TfidfVectorizer(analyzer=analyze, sublinear_tf=True, min_df=2,
                                 max_features=MAX_FEATURES)
    x = vectorizer.fit_transform(texts)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=0)
    model.fit(x, y)
    return vectorizer, model


def to_head(vectorizer: object, model: object) -> object:
    from watchkeeper.detectors.watchers.prompt_injection import LinearNgramHead

    grams = vectorizer.get_feature_names_out()  # type: ignore[attr-defined]
    idf, coef = vectorizer.idf_, model.coef_[0]  # type: ignore[attr-defined]
    weights = {str(g): (float(i), float(c)) for g, i, c in zip(grams, idf, coef, strict=True)}
    return LinearNgramHead(weights, float(model.intercept_[0]))  # type: ignore[attr-defined]


def ngram_parts(head: object, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(rule, head) scores of the watcher's pure-Python part, with this head."""
    from watchkeeper.detectors.watchers.prompt_injection import PromptInjection

    watcher = PromptInjection.__new__(PromptInjection)
    watcher.head, watcher.max_chars, watcher.embedding = head, 20000, None  # type: ignore[assignment]
    parts = watcher.explain_many(texts)
    return np.array([e["rule"] for e in parts]), np.array([e["head"] for e in parts])


def blend(rule: np.ndarray, head: np.ndarray, emb: np.ndarray | None, weight: float
          ) -> np.ndarray:
    mixed = head if emb is None else (1 - weight) * head + weight * emb
    return np.minimum(1.0, np.maximum(rule, mixed))


def choose_threshold(scores: np.ndarray, ordinary: np.ndarray, y: np.ndarray
                     ) -> tuple[float, float, float]:
    """(threshold, out-of-fold recall, FP on ordinary): the lowest threshold that leaves at
    most THRESHOLD_FP of the ordinary prompts at or above it."""
    negatives = np.sort(scores[ordinary])
    allowed = int(np.floor(THRESHOLD_FP * len(negatives)))
    threshold = round(max(float(negatives[len(negatives) - allowed - 1]) + 1e-4, 0.3), 4)
    return (threshold, float((scores[y == 1] >= threshold).mean()),
            float((scores[ordinary] >= threshold).mean()))


def embed(texts: list[str]) -> tuple[np.ndarray, str]:
    from watchkeeper.detectors.watchers.base import WatcherSpec
    from watchkeeper.detectors.watchers.embedding import SentenceEmbedder
    from watchkeeper.detectors.watchers.injection_rules import fold

    embedder = SentenceEmbedder(WatcherSpec(name="e", kind="embedding", options={
        "device": "cpu", "precision": "fp32", "max_length": 128}))
    return embedder.encode_texts([fold(t) for t in texts]), embedder.version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--safety-dir", type=Path, default=DEFAULT_SAFETY)
    args = parser.parse_args()
    if not (args.safety_dir / "deepset_prompt_injections_train.csv").is_file():
        sys.exit(f"needs the deepset train split under {args.safety_dir}")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    texts, y, ordinary, deepset = training_rows(args.safety_dir)
    print(f"training rows: {len(texts)} ({int(y.sum())} injections)")
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(texts, y))
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    for c in C_GRID:
        rule, head = np.zeros(len(texts)), np.zeros(len(texts))
        for train, test in folds:
            vectorizer, model = fit([texts[i] for i in train], y[train], c)
            rule[test], head[test] = ngram_parts(to_head(vectorizer, model),
                                                 [texts[i] for i in test])
        auc = roc_auc_score(y, blend(rule, head, None, 0))
        print(f"C={c}: out-of-fold AUROC head {roc_auc_score(y, head):.4f}, "
              f"rules+head {auc:.4f}")
        if best is None or auc > best[1]:
            best = (c, auc, rule, head)
    assert best is not None
    c, auc, rule, head = best
    oof = blend(rule, head, None, 0)
    threshold, recall, fp = choose_threshold(oof, ordinary, y)
    print(f"n-gram mode: C={c}; threshold {threshold}: out-of-fold recall {recall:.3f}, "
          f"FP on ordinary {fp:.4f} ({int(ordinary.sum())} ordinary prompts)")
    # the MiniLM part: out-of-fold probabilities, then the blend weight that maximises the
    # out-of-fold AUROC on the deepset rows (the more varied source)
    vectors, embedder_version = embed(texts)
    emb = np.zeros(len(texts))
    for train, test in folds:
        lr = LogisticRegression(C=EMB_C, class_weight="balanced", max_iter=5000)
        emb[test] = lr.fit(vectors[train], y[train]).predict_proba(vectors[test])[:, 1]
    weights = {w: roc_auc_score(y[deepset], blend(rule, head, emb, w)[deepset])
               for w in BLEND_WEIGHTS}
    for w, a in weights.items():
        print(f"blend weight {w}: out-of-fold AUROC on deepset rows {a:.4f}, all rows "
              f"{roc_auc_score(y, blend(rule, head, emb, w)):.4f}")
    weight = max(weights, key=lambda w: weights[w])
    oof_emb = blend(rule, head, emb, weight)
    threshold_emb, recall_emb, fp_emb = choose_threshold(oof_emb, ordinary, y)
    print(f"n-gram+MiniLM mode: weight {weight}; threshold {threshold_emb}: out-of-fold recall "
          f"{recall_emb:.3f}, FP on ordinary {fp_emb:.4f}")
    vectorizer, model = fit(texts, y, c)
    lr = LogisticRegression(C=EMB_C, class_weight="balanced", max_iter=5000).fit(vectors, y)
    grams = [str(g) for g in vectorizer.get_feature_names_out()]  # type: ignore[attr-defined]
    data = {
        "format": 1, "version": "1", "label": "injection", "ngram_range": [2, 4],
        "threshold": threshold, "C": c, "intercept": round(float(model.intercept_[0]), 6),  # type: ignore[attr-defined]
        "training": {"rows": len(texts), "injections": int(y.sum()),
                     "sources": ["deepset prompt-injections train (Apache-2.0)",
                                 "bench/injection/corpus.csv split=dev"],
                     "oof_auroc": round(auc, 4), "oof_recall_at_threshold": round(recall, 4),
                     "oof_fp_ordinary_at_threshold": round(fp, 4),
                     "oof_auroc_with_embeddings": round(roc_auc_score(y, oof_emb), 4),
                     "oof_recall_at_threshold_with_embeddings": round(recall_emb, 4),
                     "oof_fp_ordinary_with_embeddings": round(fp_emb, 4)},
        "embedding": {"model": "all-MiniLM-L6-v2", "embedder_version": embedder_version,
                      "weight": weight, "threshold": threshold_emb, "C": EMB_C,
                      "intercept": round(float(lr.intercept_[0]), 6),
                      "coef": [round(float(v), 6) for v in lr.coef_[0]]},
        "ngrams": grams,
        "idf": [round(float(v), 5) for v in vectorizer.idf_],  # type: ignore[attr-defined]
        "coef": [round(float(v), 5) for v in model.coef_[0]],  # type: ignore[attr-defined]
    }
    path = ART / "prompt_injection_model.json"
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n",
                    encoding="utf-8")
    (ART / "prompt_injection_NOTICE").write_text(NOTICE, encoding="utf-8")
    import hashlib

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    source = MODULE.read_text()
    source = re.sub(r'MODEL_SHA256 = "[0-9a-f]{64}"', f'MODEL_SHA256 = "{digest}"', source)
    MODULE.write_text(source)
    print(f"wrote {path} ({path.stat().st_size} bytes, sha256 {digest})")


if __name__ == "__main__":
    main()
