"""How well the built-in prompt-injection watcher separates attacks from ordinary prompts,
beside two baselines, on two sources:

- the deepset prompt-injections holdout split (../shared/data/safety, 116 rows; read in place;
  without the directory that source and the MiniLM baseline are skipped, with the reason);
- the heldout split of the project's own corpus (bench/injection/corpus.csv), never trained or
  tuned on; per category too.

Rows (each scores the same texts):
- watcher: kind prompt_injection as shipped (rules + packaged n-gram head, default threshold);
- watcher + MiniLM: the mode where torch is installed (rules, n-gram and MiniLM heads, and
  similarity to the bundled known attacks), then its parts: the same without the similarity
  (the mode as it was before the bundle, scores and cost: that watcher embeds no part), and
  the similarity alone (the largest cosine to a known attack; its threshold is the cosine at
  which the similarity alone reaches the watcher's threshold);
- head alone / rules alone: the watcher's two scorers on their own;
- MiniLM + LR (deepset train): the packaged all-MiniLM-L6-v2 embeddings and a logistic
  regression trained on the deepset train split only (the issue's baseline: what
  `train-watcher` gives on that data).

Reported: AUROC per source; per heldout category the rate flagged at the default threshold
(recall for attacks, false-positive rate for negatives); the false-positive rate on ordinary
prompts (the corpus's heldout ordinary_* rows and the demo's scripted prompts) at the default
threshold; throughput on one CPU thread in prompts/s (the heldout and deepset texts, three
passes, best kept).

    .venv/bin/python bench/prompt_injection_quality.py [--no-minilm] [--out PATH]

Writes bench/out/prompt_injection_quality.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAFETY = ROOT.parent / "shared" / "data" / "safety"
CORPUS = ROOT / "bench" / "injection" / "corpus.csv"
GOALS = {"auroc": 0.97, "fp": 0.01, "throughput": 300.0}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def auroc(y: list[int], p: list[float]) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < sum(y) < len(y) else None


def demo_prompts() -> list[str]:
    """The prompts of `watchkeeper demo`'s scripted traffic (agent/demo/script.py)."""
    from watchkeeper.agent.demo import script

    turns = [t for chat in script.SUPPORT_CHATS for t in chat]
    turns += list(script.SEARCH_QUERIES) + list(script.SUMMARIES)
    return sorted({t.prompt for t in turns})


class MiniLMBaseline:
    """MiniLM sentence embeddings + logistic regression, trained on deepset train only."""

    def __init__(self, train: list[dict[str, str]]) -> None:
        from sklearn.linear_model import LogisticRegression

        from watchkeeper.detectors.watchers.base import WatcherSpec
        from watchkeeper.detectors.watchers.embedding import SentenceEmbedder

        self.embedder = SentenceEmbedder(WatcherSpec(name="e", kind="embedding",
                                                     options={"device": "cpu"}))
        x = self.embedder.encode_texts([r["text"] for r in train])
        self.model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000)
        self.model.fit(x, [int(r["label"]) for r in train])

    def scores(self, texts: list[str]) -> list[float]:
        return [float(v) for v in
                self.model.predict_proba(self.embedder.encode_texts(texts))[:, 1]]


def minilm_scorers(blended: Any, plain: Any) -> dict[str, Any]:
    """The MiniLM mode, the same without the similarity to known attacks, and the similarity
    alone: (scorer, threshold) each. `plain` is a second watcher of the mode that embeds no
    part, so its row also measures what the mode cost before the bundle (the whole-text
    matrix product it still computes is negligible)."""
    embedding = blended.embedding
    threshold = blended.default_thresholds["injection"]
    plain.embedding.part_floor = math.inf

    def without_similarity(texts: list[str]) -> list[float]:
        w = embedding.weight
        return [min(1.0, max(e["rule"], (1 - w) * e["head"] + w * e["embedding"]))
                for e in plain.explain_many(texts)]

    return {
        "watcher + MiniLM (torch)": (
            lambda ts: [e["score"] for e in blended.explain_many(ts)], threshold),
        "MiniLM mode without similarity": (without_similarity, threshold),
        "similarity alone (cosine to known attacks)": (
            lambda ts: [e["similarity"] for e in blended.explain_many(ts)],
            round(embedding.floor + threshold * (1 - embedding.floor), 4)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-minilm", action="store_true", help="skip the MiniLM baseline")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" /
                        "prompt_injection_quality.json")
    args = parser.parse_args()
    import threadpoolctl

    from watchkeeper.detectors.watchers.base import WatcherSpec
    from watchkeeper.detectors.watchers.prompt_injection import PromptInjection

    watcher = PromptInjection(WatcherSpec(name="prompt-injection", kind="prompt_injection",
                                          field="prompt", options={"embeddings": "off"}))
    corpus = read_csv(CORPUS)
    heldout = [r for r in corpus if r["split"] == "heldout"]
    sources: dict[str, list[dict[str, str]]] = {"own heldout": heldout}
    notes: list[str] = []
    if (SAFETY / "deepset_prompt_injections_test.csv").is_file():
        sources = {"deepset holdout": read_csv(SAFETY / "deepset_prompt_injections_test.csv"),
                   **sources}
    else:
        notes.append(f"deepset holdout skipped: {SAFETY} is missing")
    demo = demo_prompts()
    demo_ordinary = [t for t in demo if not t.lower().startswith("ignore all previous")]

    ngram_t = watcher.default_thresholds["injection"]
    scorers: dict[str, Any] = {
        "watcher (every install)": (lambda ts: [watcher.score_text(t) for t in ts], ngram_t),
    }
    if not args.no_minilm:
        minilm = WatcherSpec(name="prompt-injection", kind="prompt_injection", field="prompt",
                             options={"embeddings": "on", "device": "cpu"})
        scorers.update(minilm_scorers(PromptInjection(minilm), PromptInjection(minilm)))
    scorers["n-gram head alone"] = (lambda ts: [watcher.explain(t)["head"] for t in ts],
                                    ngram_t)
    scorers["rules alone"] = (lambda ts: [watcher.explain(t)["rule"] for t in ts], ngram_t)
    if args.no_minilm:
        notes.append("MiniLM rows skipped (--no-minilm)")
    elif not (SAFETY / "deepset_prompt_injections_train.csv").is_file():
        notes.append("MiniLM baseline skipped: the deepset train split is missing")
    else:
        baseline = MiniLMBaseline(read_csv(SAFETY / "deepset_prompt_injections_train.csv"))
        scorers["baseline: MiniLM + LR (deepset train)"] = (baseline.scores, 0.5)
    # after every model has loaded: threadpoolctl caps only the pools of libraries already
    # loaded (called before torch was imported, it left torch's OpenMP pool at every core)
    threadpoolctl.threadpool_limits(1)
    report: dict[str, Any] = {"watcher_version": watcher.version,
                              "notes": notes, "goals": GOALS, "rows": {}}
    for name, (scorer, threshold) in scorers.items():
        row: dict[str, Any] = {"threshold": threshold}
        for source, rows in sources.items():
            y = [int(r["label"]) for r in rows]
            p = scorer([r["text"] for r in rows])
            row[f"auroc {source}"] = auroc(y, p)
            if source == "own heldout":
                per: dict[str, list[float]] = defaultdict(list)
                for r, s in zip(rows, p, strict=True):
                    per[r["category"]].append(s)
                negatives = [s for r, s in zip(rows, p, strict=True) if r["label"] == "0"]
                row["per category"] = {
                    c: {"n": len(v), "flagged": round(float(np.mean(np.array(v) >= threshold)),
                                                      4),
                        "auroc vs heldout negatives": auroc(
                            [1] * len(v) + [0] * len(negatives), v + negatives)
                        if rows[[r["category"] for r in rows].index(c)]["label"] == "1"
                        else None}
                    for c, v in sorted(per.items())}
                ordinary = [s for r, s in zip(rows, p, strict=True)
                            if r["category"].startswith("ordinary_")]
                hard = [s for r, s in zip(rows, p, strict=True)
                        if r["category"].startswith("hard_")]
                demo_scores = scorer(demo_ordinary)
                row["fp ordinary heldout"] = round(float(np.mean(np.array(ordinary)
                                                                 >= threshold)), 4)
                row["n ordinary heldout"] = len(ordinary)
                row["fp demo prompts"] = round(float(np.mean(np.array(demo_scores)
                                                             >= threshold)), 4)
                row["n demo prompts"] = len(demo_ordinary)
                traffic = np.array(ordinary + list(demo_scores))
                row["fp ordinary traffic (heldout ordinary + demo)"] = round(float(np.mean(
                    traffic >= threshold)), 4)
                row["fp hard negatives heldout"] = round(float(np.mean(np.array(hard)
                                                                       >= threshold)), 4)
        texts = [r["text"] for rows in sources.values() for r in rows]
        best = 0.0
        for _ in range(3):
            started = time.perf_counter()
            scorer(texts)
            best = max(best, len(texts) / (time.perf_counter() - started))
        row["prompts per s (1 CPU thread)"] = round(best, 1)
        report["rows"][name] = row
        print(f"\n== {name}")
        for key, value in row.items():
            if key != "per category":
                print(f"  {key}: {value if not isinstance(value, float) else round(value, 4)}")
    print("\nper heldout category (flagged at each row's threshold; AUROC of the category's "
          "attacks vs all heldout negatives):")
    names = list(report["rows"])
    print("  " + "category".ljust(24) + "".join(n[:22].rjust(24) for n in names))
    for category in report["rows"]["watcher (every install)"]["per category"]:
        cells = []
        for n in names:
            cell = report["rows"][n]["per category"][category]
            a = cell["auroc vs heldout negatives"]
            cells.append(f"{cell['flagged']:.2f}" + (f" / {a:.3f}" if a is not None else ""))
        n_rows = report["rows"]["watcher (every install)"]["per category"][category]["n"]
        print("  " + f"{category} ({n_rows})".ljust(24) + "".join(c.rjust(24) for c in cells))
    for note in notes:
        print("note:", note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
