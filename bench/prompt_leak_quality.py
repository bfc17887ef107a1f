"""The prompt-leak watcher on the constructed set (bench/leak/leak.jsonl, built by
bench/leak/build_set.py): AUROC, precision and recall at the watcher's default threshold, the
share flagged per category, and throughput; dev and held-out apart, for the full watcher and
for its lexical part alone (`embeddings: false`, no torch).

    python bench/prompt_leak_quality.py [--splits dev,heldout] [--rows full,lexical]
                                        [--threshold X] [--show N] [--reps 3]
                                        [--threads 1] [--device cpu]

`--show N` prints the N worst-scored cases of each split (leaks lowest, non-leaks highest) with
their evidence (quote, coverage, paraphrase, secret).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "leak" / "leak.jsonl"
BLIND_SPOTS = {"translated"}  # MiniLM-L6 is English-centric (see the watcher's module doc)


def auroc(labels: list[int], scores: list[float]) -> float:
    """Mann-Whitney U / (n_pos * n_neg), ties counted half."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def build(row: str, device: str):  # type: ignore[no-untyped-def]
    from watchkeeper.detectors.watchers.base import WatcherSpec
    from watchkeeper.detectors.watchers.registry import build as build_watcher

    options = {"device": device, **({"embeddings": False} if row == "lexical" else {})}
    return build_watcher(WatcherSpec(name="prompt-leak", kind="prompt_leak", options=options))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="dev,heldout")
    parser.add_argument("--rows", default="full,lexical")
    parser.add_argument("--threshold", type=float, default=None,
                        help="default: the watcher's default_thresholds['leak']")
    parser.add_argument("--show", type=int, default=0)
    parser.add_argument("--reps", type=int, default=3, help="timed passes (best kept)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: figures per core)")
    args = parser.parse_args()
    if args.rows != "lexical":
        import torch

        torch.set_num_threads(args.threads)
    data = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    for row in args.rows.split(","):
        started = time.perf_counter()
        watcher = build(row, args.device)
        load_s = time.perf_counter() - started
        threshold = args.threshold if args.threshold is not None else \
            watcher.default_thresholds["leak"]
        print(f"\n== {row}: {watcher.version}; threshold {threshold:g}; load {load_s:.1f}s")
        for split in args.splits.split(","):
            cases = [r for r in data if r["split"] == split]
            triples = [(r["completion"], r["system_instructions"], "") for r in cases]
            watcher._cache.clear()
            started = time.perf_counter()
            details = watcher.explain(triples)
            cold = time.perf_counter() - started
            warm = float("inf")
            for _ in range(args.reps):  # system prompts analysed and cached: the steady state
                started = time.perf_counter()
                watcher.explain(triples)
                warm = min(warm, time.perf_counter() - started)
            scores = [d["score"] for d in details]
            labels = [int(r["label"]) for r in cases]
            flagged = [s >= threshold for s in scores]
            tp = sum(f and y for f, y in zip(flagged, labels, strict=True))
            fp = sum(f and not y for f, y in zip(flagged, labels, strict=True))
            fn = sum((not f) and y for f, y in zip(flagged, labels, strict=True))
            precision = tp / (tp + fp) if tp + fp else float("nan")
            recall = tp / (tp + fn) if tp + fn else float("nan")
            print(f"-- {split}: n={len(cases)} ({sum(labels)} leaks)  AUROC "
                  f"{auroc(labels, scores):.3f}  precision {precision:.3f}  recall "
                  f"{recall:.3f}  FP {fp}/{len(labels) - sum(labels)}  |  "
                  f"{len(cases) / warm:.0f} answers/s warm, {len(cases) / cold:.0f} cold "
                  f"({_threads()} torch threads)")
            seen = [(y, s) for y, s, r in zip(labels, scores, cases, strict=True)
                    if r["category"] not in BLIND_SPOTS]
            kept_tp = sum(s >= threshold for y, s in seen if y)
            print(f"   without {', '.join(sorted(BLIND_SPOTS))} (a known blind spot): AUROC "
                  f"{auroc([y for y, _ in seen], [s for _, s in seen]):.3f}  recall "
                  f"{kept_tp / max(1, sum(y for y, _ in seen)):.3f}")
            per: dict[tuple[int, str], list[float]] = defaultdict(list)
            for r, s in zip(cases, scores, strict=True):
                per[(int(r["label"]), r["category"])].append(s)
            for (label, category), values in sorted(per.items(), key=lambda kv: (-kv[0][0],
                                                                                   kv[0][1])):
                hit = sum(v >= threshold for v in values)
                kind = "leak " if label else "clean"
                print(f"   {kind} {category:<15} flagged {hit}/{len(values)}  mean score "
                      f"{sum(values) / len(values):.2f}  min {min(values):.2f}  "
                      f"max {max(values):.2f}")
            if args.show:
                worst = sorted(zip(cases, details, strict=True),
                               key=lambda cd: cd[1]["score"] if cd[0]["label"]
                               else 1 - cd[1]["score"])[:args.show]
                for case, detail in worst:
                    evidence = " ".join(f"{k}={v:.2f}" for k, v in detail.items())
                    print(f"   [{case['label']} {case['category']} p{case['prompt_id']}] "
                          f"{evidence} :: {case['completion'][:90]!r}")
    return 0


def _threads() -> int:
    try:
        import torch

        return int(torch.get_num_threads())
    except ImportError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
