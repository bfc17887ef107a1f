"""Trains the prompt-injection watcher's packaged heads, bundles its known attacks and writes
them as package data:

    detectors/watchers/prompt_injection_model.json     n-grams, idf, weights, thresholds
    detectors/watchers/prompt_injection_attacks.json   known attacks (texts), for similarity
    detectors/watchers/prompt_injection_NOTICE         the training data's attribution

and pins both files' SHA-256 in detectors/watchers/prompt_injection.py (MODEL_SHA256,
ATTACKS_SHA256).

Training data: the deepset prompt-injections train split (../shared/data/safety, Apache-2.0) and
the dev split of bench/injection/corpus.csv; never the deepset holdout or the corpus's heldout
split. Features: character 2-4-grams inside word boundaries of the folded text
(injection_rules.fold), sublinear tf, idf, L2 norm; a logistic regression (C chosen by 5-fold
cross-validated AUROC; the MiniLM head's C and its blend weight likewise, together, by the
out-of-fold AUROC on the deepset rows). The default threshold is chosen on out-of-fold scores of
the whole watcher (rules and head together): the lowest threshold at which at most THRESHOLD_FP
of the ordinary prompts (deepset train negatives and the corpus's ordinary_* dev rows) score at
or above it. The known-attack bundle: the attacks of the deepset train split and the corpus's
dev attacks written without obfuscation (override, role hijack, extraction, other languages),
one per folded text; its similarity floor is the one with the best out-of-fold AUROC on the
deepset rows (each fold compared with the bundle rows of the other folds only). Deterministic:
same data, same files, same checksums.

    .venv/bin/python bench/train_prompt_injection.py [--safety-dir ../shared/data/safety]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path
from typing import TypeVar

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
MODULE = ROOT / "detectors" / "watchers" / "prompt_injection.py"
ART = ROOT / "detectors" / "watchers"
CORPUS = ROOT / "bench" / "injection" / "corpus.csv"
DEFAULT_SAFETY = ROOT.parent / "shared" / "data" / "safety"
K = TypeVar("K")
MAX_FEATURES = 30000
C_GRID = (3.0, 10.0)
EMB_C_GRID = (0.3, 1.0, 3.0, 10.0)  # the MiniLM head's C, chosen with the blend weight
BLEND_WEIGHTS = (0.2, 0.3, 0.4, 0.5)
SIMILARITY_FLOORS = (0.86, 0.88, 0.9, 0.92, 0.94, 0.96)
# parts of a text the n-gram head scores at least this are compared with the bundle too (in
# texts no rule matched). Out of fold, 0.3 and 0.5 measured alike; 0.5 compares 2 of the 187
# parts of ordinary prompts (0.3: 18) and 193 parts in all (0.3: 298), so it costs least
PART_HEAD_FLOOR = 0.5
BUNDLED_CATEGORIES = frozenset({"override", "role_hijack", "extraction", "multilingual"})
THRESHOLD_FP = 0.005  # on out-of-fold ordinary prompts: half the 1% goal, as margin
NOTICE = """Watchkeeper prompt-injection model (prompt_injection_model.json) and known-attack
bundle (prompt_injection_attacks.json)

They were made from:

1. deepset "prompt-injections" data set, train split
   (https://huggingface.co/datasets/deepset/prompt-injections) by deepset, licensed under
   the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0). Obtained
   through the MIT-licensed mirror sinanw/llm-security-prompt-injection. The model holds
   weights derived from it (character n-gram and MiniLM-embedding logistic regressions), not
   its texts. The bundle holds the texts of its injections (label 1), unmodified, each marked
   "source": "deepset prompt-injections train (Apache-2.0)".
2. The dev split of Watchkeeper's own corpus (bench/injection/), written for this project.

Made with bench/train_prompt_injection.py.
"""
DEEPSET_SOURCE = "deepset prompt-injections train (Apache-2.0)"
CORPUS_SOURCE = "bench/injection/corpus.csv split=dev"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def training_rows(safety: Path
                  ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """texts, labels, whether each row is an ordinary prompt (for the threshold), whether it
    comes from deepset, and whether it is a known attack for the bundle."""
    texts, labels, ordinary, deepset, bundled = [], [], [], [], []
    for row in read_csv(safety / "deepset_prompt_injections_train.csv"):
        texts.append(row["text"])
        labels.append(int(row["label"]))
        ordinary.append(row["label"] == "0")
        deepset.append(True)
        bundled.append(row["label"] == "1")
    for row in read_csv(CORPUS):
        if row["split"] != "dev":
            continue
        texts.append(row["text"])
        labels.append(int(row["label"]))
        ordinary.append(row["category"].startswith("ordinary_"))
        deepset.append(False)
        bundled.append(row["category"] in BUNDLED_CATEGORIES)
    return (texts, np.array(labels), np.array(ordinary), np.array(deepset),
            first_of_each(texts, np.array(bundled)))


def first_of_each(texts: list[str], bundled: np.ndarray) -> np.ndarray:
    """`bundled` with repeats of a folded text dropped (a duplicate adds no coverage)."""
    from watchkeeper.detectors.watchers.injection_rules import fold

    seen: set[str] = set()
    out = bundled.copy()
    for i in np.flatnonzero(bundled):
        key = fold(texts[i])
        out[i] = key not in seen
        seen.add(key)
    return out


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


def ngram_parts(head: object, texts: list[str]
                ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """(rule, head) scores of the watcher's pure-Python part, with this head, and each text's
    folded parts that the watcher would compare with the bundle (`_embedding_part`)."""
    from watchkeeper.detectors.watchers.injection_rules import views
    from watchkeeper.detectors.watchers.prompt_injection import PromptInjection, parts

    watcher = PromptInjection.__new__(PromptInjection)
    watcher.head, watcher.max_chars, watcher.embedding = head, 20000, None  # type: ignore[assignment]
    explained = watcher.explain_many(texts)
    suspects = [[p for p in parts(views(t)[0], t)
                 if head.score_folded(p) >= PART_HEAD_FLOOR]  # type: ignore[attr-defined]
                if not e["rule"] else [] for t, e in zip(texts, explained, strict=True)]
    return (np.array([e["rule"] for e in explained]), np.array([e["head"] for e in explained]),
            suspects)


def blend(rule: np.ndarray, head: np.ndarray, emb: np.ndarray | None, weight: float,
          similarity: np.ndarray | None = None) -> np.ndarray:
    mixed = head if emb is None else (1 - weight) * head + weight * emb
    if similarity is not None:
        mixed = np.maximum(mixed, similarity)
    scores: np.ndarray = np.minimum(1.0, np.maximum(rule, mixed))
    return scores


def similarity_score(cosine: np.ndarray, floor: float) -> np.ndarray:
    """EmbeddingHead.similarity_score, vectorised."""
    return np.maximum(0.0, (cosine - floor) / (1.0 - floor))


def oof_cosines(vectors: np.ndarray, suspects: list[list[str]], bundled: np.ndarray,
                folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Each row's largest cosine (whole text and suspicious parts) to the bundled rows of the
    other folds: what the similarity would say of an attack it has not seen."""
    owners = np.array([i for i, found in enumerate(suspects) for _ in found], dtype=int)
    part_vectors, _ = embed([p for found in suspects for p in found])
    cosines = np.zeros(len(vectors))
    for train, test in folds:
        bundle = vectors[np.intersect1d(np.flatnonzero(bundled), train)]
        cosines[test] = (vectors[test] @ bundle.T).max(axis=1)
        mine = np.isin(owners, test)
        np.maximum.at(cosines, owners[mine], (part_vectors[mine] @ bundle.T).max(axis=1))
    return cosines


def choose_threshold(scores: np.ndarray, ordinary: np.ndarray, y: np.ndarray
                     ) -> tuple[float, float, float]:
    """(threshold, out-of-fold recall, FP on ordinary): the lowest threshold that leaves at
    most THRESHOLD_FP of the ordinary prompts at or above it."""
    negatives = np.sort(scores[ordinary])
    allowed = int(np.floor(THRESHOLD_FP * len(negatives)))
    threshold = round(max(float(negatives[len(negatives) - allowed - 1]) + 1e-4, 0.3), 4)
    return (threshold, float((scores[y == 1] >= threshold).mean()),
            float((scores[ordinary] >= threshold).mean()))


def embed(folded: list[str]) -> tuple[np.ndarray, str]:
    from watchkeeper.detectors.watchers.base import WatcherSpec
    from watchkeeper.detectors.watchers.embedding import SentenceEmbedder

    embedder = SentenceEmbedder(WatcherSpec(name="e", kind="embedding", options={
        "device": "cpu", "precision": "fp32", "max_length": 128}))
    return embedder.encode_texts(folded), embedder.version


def write_bundle(texts: list[str], deepset: np.ndarray, bundled: np.ndarray) -> str:
    """Writes the known-attack bundle; returns its SHA-256."""
    attacks = [{"text": texts[i], "source": DEEPSET_SOURCE if deepset[i] else CORPUS_SOURCE}
               for i in np.flatnonzero(bundled)]
    data = {"format": 1, "about": "known prompt-injection attacks, compared by MiniLM cosine "
                                 "similarity (see prompt_injection_NOTICE)",
            "attacks": attacks}
    return write_json(ART / "prompt_injection_attacks.json", data, indent=0)


def write_json(path: Path, data: dict[str, object], indent: int | None = None) -> str:
    """Writes compact, deterministic JSON; returns the file's SHA-256."""
    import hashlib

    path.write_text(json.dumps(data, ensure_ascii=False, indent=indent,
                               separators=(",", ":")) + "\n", encoding="utf-8")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"wrote {path} ({path.stat().st_size} bytes, sha256 {digest})")
    return digest


def pin(name: str, digest: str) -> None:
    """Sets `name = "<sha256>"` in prompt_injection.py."""
    source = re.sub(rf'{name} = "[0-9a-f]{{64}}"', f'{name} = "{digest}"', MODULE.read_text())
    MODULE.write_text(source)


def fit_ngram(texts: list[str], y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]
              ) -> tuple[float, float, np.ndarray, np.ndarray, list[list[str]]]:
    """(C, out-of-fold AUROC, rule, head, suspicious parts): the C with the best out-of-fold
    AUROC of rules + n-gram head."""
    from sklearn.metrics import roc_auc_score

    best: tuple[float, float, np.ndarray, np.ndarray, list[list[str]]] | None = None
    for c in C_GRID:
        rule, head = np.zeros(len(texts)), np.zeros(len(texts))
        suspects: list[list[str]] = [[] for _ in texts]
        for train, test in folds:
            vectorizer, model = fit([texts[i] for i in train], y[train], c)
            rule[test], head[test], found = ngram_parts(to_head(vectorizer, model),
                                                        [texts[i] for i in test])
            for i, parts in zip(test, found, strict=True):
                suspects[i] = parts
        auc = roc_auc_score(y, blend(rule, head, None, 0))
        print(f"C={c}: out-of-fold AUROC head {roc_auc_score(y, head):.4f}, "
              f"rules+head {auc:.4f}")
        if best is None or auc > best[1]:
            best = (c, auc, rule, head, suspects)
    assert best is not None
    return best


def oof_embedding_head(vectors: np.ndarray, y: np.ndarray,
                       folds: list[tuple[np.ndarray, np.ndarray]], c: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    emb = np.zeros(len(y))
    for train, test in folds:
        lr = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
        emb[test] = lr.fit(vectors[train], y[train]).predict_proba(vectors[test])[:, 1]
    return emb


def best_by_deepset_auroc(y: np.ndarray, deepset: np.ndarray, candidates: dict[K, np.ndarray],
                          what: str) -> K:
    """The candidate whose out-of-fold scores have the best AUROC on the deepset rows (the more
    varied source; the first of equals)."""
    from sklearn.metrics import roc_auc_score

    aucs = {k: roc_auc_score(y[deepset], v[deepset]) for k, v in candidates.items()}
    for k, a in aucs.items():
        print(f"{what} {k}: out-of-fold AUROC on deepset rows {a:.4f}, all rows "
              f"{roc_auc_score(y, candidates[k]):.4f}")
    return max(aucs, key=lambda k: aucs[k])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--safety-dir", type=Path, default=DEFAULT_SAFETY)
    args = parser.parse_args()
    if not (args.safety_dir / "deepset_prompt_injections_train.csv").is_file():
        sys.exit(f"needs the deepset train split under {args.safety_dir}")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from watchkeeper.detectors.watchers.injection_rules import fold

    texts, y, ordinary, deepset, bundled = training_rows(args.safety_dir)
    print(f"training rows: {len(texts)} ({int(y.sum())} injections, {int(bundled.sum())} "
          "bundled as known attacks)")
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(texts, y))
    c, auc, rule, head, suspects = fit_ngram(texts, y, folds)
    threshold, recall, fp = choose_threshold(blend(rule, head, None, 0), ordinary, y)
    print(f"n-gram mode: C={c}; threshold {threshold}: out-of-fold recall {recall:.3f}, "
          f"FP on ordinary {fp:.4f} ({int(ordinary.sum())} ordinary prompts)")
    # the MiniLM part: out-of-fold probabilities, the blend weight, then the similarity floor
    vectors, embedder_version = embed([fold(t) for t in texts])
    heads = {c: oof_embedding_head(vectors, y, folds, c) for c in EMB_C_GRID}
    emb_c, weight = best_by_deepset_auroc(y, deepset, {
        (c, w): blend(rule, head, heads[c], w) for c in EMB_C_GRID for w in BLEND_WEIGHTS},
        "MiniLM head C, blend weight")
    emb = heads[emb_c]
    print(f"parts compared with the bundle: {sum(map(len, suspects))}")
    cosines = oof_cosines(vectors, suspects, bundled, folds)
    print(f"similarity alone: out-of-fold AUROC {roc_auc_score(y, cosines):.4f}, deepset rows "
          f"{roc_auc_score(y[deepset], cosines[deepset]):.4f}")
    floor = best_by_deepset_auroc(y, deepset, {
        f: blend(rule, head, emb, weight, similarity_score(cosines, f))
        for f in SIMILARITY_FLOORS}, "similarity floor")
    oof_emb = blend(rule, head, emb, weight, similarity_score(cosines, floor))
    for name, scores in (("n-gram+MiniLM without similarity", blend(rule, head, emb, weight)),
                         ("n-gram+MiniLM+similarity", oof_emb)):
        t, r, f = choose_threshold(scores, ordinary, y)
        print(f"{name}: out-of-fold AUROC {roc_auc_score(y, scores):.4f}; threshold {t}: "
              f"recall {r:.3f}, FP on ordinary {f:.4f}")
    threshold_emb, recall_emb, fp_emb = choose_threshold(oof_emb, ordinary, y)
    vectorizer, model = fit(texts, y, c)
    lr = LogisticRegression(C=emb_c, class_weight="balanced", max_iter=5000).fit(vectors, y)
    grams = [str(g) for g in vectorizer.get_feature_names_out()]  # type: ignore[attr-defined]
    data = {
        "format": 1, "version": "3", "label": "injection", "ngram_range": [2, 4],
        "threshold": threshold, "C": c, "intercept": round(float(model.intercept_[0]), 6),  # type: ignore[attr-defined]
        "training": {"rows": len(texts), "injections": int(y.sum()),
                     "sources": [DEEPSET_SOURCE, CORPUS_SOURCE],
                     "oof_auroc": round(auc, 4), "oof_recall_at_threshold": round(recall, 4),
                     "oof_fp_ordinary_at_threshold": round(fp, 4),
                     "oof_auroc_with_embeddings": round(roc_auc_score(y, oof_emb), 4),
                     "oof_recall_at_threshold_with_embeddings": round(recall_emb, 4),
                     "oof_fp_ordinary_with_embeddings": round(fp_emb, 4)},
        "embedding": {"model": "all-MiniLM-L6-v2", "embedder_version": embedder_version,
                      "weight": weight, "threshold": threshold_emb, "C": emb_c,
                      "intercept": round(float(lr.intercept_[0]), 6),
                      "coef": [round(float(v), 6) for v in lr.coef_[0]],
                      "similarity": {"floor": floor, "part_head_floor": PART_HEAD_FLOOR,
                                     "attacks": int(bundled.sum())}},
        "ngrams": grams,
        "idf": [round(float(v), 5) for v in vectorizer.idf_],  # type: ignore[attr-defined]
        "coef": [round(float(v), 5) for v in model.coef_[0]],  # type: ignore[attr-defined]
    }
    pin("ATTACKS_SHA256", write_bundle(texts, deepset, bundled))
    pin("MODEL_SHA256", write_json(ART / "prompt_injection_model.json", data))
    (ART / "prompt_injection_NOTICE").write_text(NOTICE, encoding="utf-8")


if __name__ == "__main__":
    main()
