"""Watcher forward path on a GPU: samples/s and per-batch latency by batch size, precision and
arrival order, for the transformers classifier and Detoxify watchers.

    python bench/watchers_gpu.py [--quick] [--device auto|cpu|cuda[:N]]
        [--targets hf_classifier:minilm,hf_classifier:bert-base,detoxify:bert-base]
        [--batches 1,8,32,64,128,256] [--precisions fp32,fp16,bf16]
        [--texts 2048] [--cell-seconds 1.0] [--out FILE.json]

Nothing can be downloaded on the GPU machine, so the models are randomly initialised from
configs (speed does not depend on the weights): BERT-base class (hidden 768, 12 layers, 12 heads,
vocab 30522; the size of Detoxify's original model) and MiniLM class (hidden 384, 6 layers, 12
heads; the size of all-MiniLM-L6-v2), with a WordPiece tokenizer written here. Each is saved and
loaded through the real watcher (`registry.build`): hf_classifier from a save_pretrained
directory (softmax), detoxify from a checkpoint in Detoxify's format plus config_dir (sigmoid
over six categories), so tokenisation, autocast and the copy back are in the numbers.

The texts are synthetic tweet/chat lengths: 10 to 200 tokens, log-normal around 40, every word
in the vocabulary (one word, one token). Per cell (target x precision x batch size x order) one
untimed batch warms up, then batches of the given size run until all texts are scored or
--cell-seconds have passed. "arrival" chunks the texts as they come; "sorted" sorts them by
length first, as the watch service does, which cuts padding (the pad% column). Precision is the
watcher's autocast (fp32 = none). Results: a table, and JSON with the GPU name, torch, CUDA and
cuDNN versions in bench/out/watchers_gpu.json (watchers_gpu-quick.json with --quick).

--quick (for a CPU check: the MiniLM-class model only, both watcher kinds, batches 1/8/32, 48
texts, half-second cells) takes one to three minutes on two cores. The full run on a GPU builds
and saves the models in seconds and then takes about 1.5 s per cell: 108 cells, 3-4 minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import random
import statistics
import sys
import tempfile
import time
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODELS: dict[str, dict[str, int]] = {
    "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                  "intermediate_size": 3072},
    "minilm": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
               "intermediate_size": 1536},
}
VOCAB_SIZE = 30522
CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
DEFAULT_TARGETS = "hf_classifier:minilm,hf_classifier:bert-base,detoxify:bert-base"


def _import_watchkeeper() -> None:
    """The repository's detectors/ as watchkeeper.detectors when the package is not installed
    (a bare GPU machine with the working tree and torch + transformers only)."""
    try:
        import watchkeeper.detectors.watchers  # noqa: F401
        return
    except ImportError:
        pass
    root = types.ModuleType("watchkeeper")
    root.__path__ = []
    sys.modules["watchkeeper"] = root
    spec = importlib.util.spec_from_file_location(
        "watchkeeper.detectors", REPO / "detectors" / "__init__.py",
        submodule_search_locations=[str(REPO / "detectors")])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["watchkeeper.detectors"] = module
    spec.loader.exec_module(module)


def _words(rng: random.Random, n: int) -> list[str]:
    """n distinct lowercase pseudo-words (no digits, no punctuation: one word, one token)."""
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    seen: set[str] = set()
    while len(seen) < n:
        seen.add("".join(rng.choice(consonants) + rng.choice(vowels)
                         for _ in range(rng.randint(1, 4))))
    return sorted(seen)


def texts(n: int, words: list[str], seed: int = 7) -> list[str]:
    """Tweet/chat-like texts: 10-200 words, log-normal around 40 (median), mixed order."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = min(200, max(10, round(rng.lognormvariate(math.log(40), 0.6))))
        out.append(" ".join(rng.choice(words) for _ in range(length)))
    return out


def build_models(root: Path, names: set[str], words: list[str]) -> dict[str, Path]:
    """Per model: a save_pretrained classifier directory (config + tokenizer + weights) and a
    Detoxify checkpoint (.ckpt) whose config_dir is that directory."""
    import torch
    import transformers

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    vocab += [f"[unused{i}]" for i in range(VOCAB_SIZE - len(vocab))]
    paths: dict[str, Path] = {}
    for name in sorted(names):
        directory = root / name
        directory.mkdir(parents=True)
        (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
        transformers.BertTokenizer(str(directory / "vocab.txt")).save_pretrained(directory)
        config = transformers.BertConfig(vocab_size=len(vocab), num_labels=len(CLASSES),
                                         max_position_embeddings=512, **MODELS[name])
        torch.manual_seed(0)
        model = transformers.BertForSequenceClassification(config).eval()
        model.save_pretrained(directory)
        torch.save({"config": {
            "arch": {"args": {"model_type": "bert-base-uncased", "num_classes": len(CLASSES),
                              "model_name": "BertForSequenceClassification",
                              "tokenizer_name": "BertTokenizer"}},
            "dataset": {"args": {"classes": CLASSES}}},
            "state_dict": model.state_dict()}, root / f"{name}.ckpt")
        paths[name] = directory
    return paths


def load_watcher(kind: str, model: str, paths: dict[str, Path], device: str, precision: str,
                 batch: int) -> Any:
    from watchkeeper.detectors.watchers import WatcherSpec
    from watchkeeper.detectors.watchers.registry import build

    options: dict[str, Any] = {"device": device, "precision": precision, "max_batch": batch}
    if kind == "hf_classifier":
        options["model"] = str(paths[model])
    else:
        options |= {"checkpoint": str(paths[model].parent / f"{model}.ckpt"),
                    "config_dir": str(paths[model])}
    return build(WatcherSpec(name=f"bench-{kind}", kind=kind, options=options))


def run_cell(watcher: Any, items: list[Any], lengths: list[int], batch: int,
             budget_s: float) -> dict[str, Any]:
    """Batches of `batch` items in the given order until done or out of time."""
    chunks = [range(i, min(i + batch, len(items))) for i in range(0, len(items), batch)]
    watcher.score([items[i] for i in chunks[0]])  # warm-up: allocations, kernels for the shape
    latencies: list[float] = []
    scored = padded = real = 0
    began = time.perf_counter()
    for chunk in chunks:
        t0 = time.perf_counter()
        watcher.score([items[i] for i in chunk])  # returns Python floats: the device synced
        latencies.append((time.perf_counter() - t0) * 1000)
        scored += len(chunk)
        real += sum(lengths[i] for i in chunk)
        padded += len(chunk) * max(lengths[i] for i in chunk)
        if time.perf_counter() - began >= budget_s:
            break
    seconds = time.perf_counter() - began
    ordered = sorted(latencies)
    return {"samples": scored, "batches": len(latencies), "seconds": round(seconds, 4),
            "samples_per_s": round(scored / seconds, 1),
            "latency_ms": {"p50": round(statistics.median(ordered), 3),
                           "p95": round(ordered[min(len(ordered) - 1,
                                                    int(0.95 * len(ordered)))], 3),
                           "mean": round(statistics.fmean(ordered), 3)},
            "padding_fraction": round(1 - real / padded, 4) if padded else 0.0}


def environment(device: str) -> dict[str, Any]:
    import torch
    import transformers

    env: dict[str, Any] = {
        "device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "transformers": transformers.__version__, "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(), "platform": platform.platform(),
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        env |= {"gpu": torch.cuda.get_device_name(index),
                "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "gpu_capability": f"{props.major}.{props.minor}",
                "bf16_supported": torch.cuda.is_bf16_supported()}
    else:
        env["gpu"] = None
    try:
        sys.path.insert(0, str(HERE))
        from _common import git_state, machine

        env |= {"machine": machine(), "git": git_state()}
    except Exception:  # the bare GPU machine may lack rich: the numbers still count
        pass
    return env


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ("target", "precision", "order", "batch", "samples/s", "p50 ms", "p95 ms", "pad%",
              "n")
    lines = [header] + [(r["target"], r["precision"], r["order"], str(r["batch"]),
                         f"{r['samples_per_s']:.1f}", f"{r['latency_ms']['p50']:.2f}",
                         f"{r['latency_ms']['p95']:.2f}", f"{100 * r['padding_fraction']:.0f}",
                         str(r["samples"])) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for k, line in enumerate(lines):
        print("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(line, widths, strict=True))))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small CPU check")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--targets", default=None, help=f"default {DEFAULT_TARGETS}")
    parser.add_argument("--batches", default=None, help="default 1,8,32,64,128,256")
    parser.add_argument("--precisions", default="fp32,fp16,bf16")
    parser.add_argument("--texts", type=int, default=None, help="default 2048 (48 quick)")
    parser.add_argument("--cell-seconds", type=float, default=None, help="default 1.0")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    quick = args.quick
    targets = [t.split(":") for t in (args.targets or (
        "hf_classifier:minilm,detoxify:minilm" if quick else DEFAULT_TARGETS)).split(",")]
    batches = [int(b) for b in (args.batches or ("1,8,32" if quick else
                                                 "1,8,32,64,128,256")).split(",")]
    precisions = args.precisions.split(",")
    n_texts = args.texts or (48 if quick else 2048)
    budget = args.cell_seconds or (0.5 if quick else 1.0)
    out = args.out or HERE / "out" / ("watchers_gpu-quick.json" if quick else "watchers_gpu.json")

    _import_watchkeeper()
    import torch

    from watchkeeper.detectors.watchers import Item
    from watchkeeper.detectors.watchers.torch_runtime import resolve_device

    device = resolve_device(args.device)
    env = environment(device)
    print(f"device {device} ({env.get('gpu') or 'CPU'}), torch {env['torch']}, "
          f"CUDA {env['cuda']}, {len(targets)} targets x {len(precisions)} precisions x "
          f"{len(batches)} batch sizes x 2 orders, {n_texts} texts, {budget:g} s per cell",
          flush=True)
    rng = random.Random(3)
    words = _words(rng, 5000)
    corpus = texts(n_texts, words)
    rows: list[dict[str, Any]] = []
    mean_tokens = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        paths = build_models(Path(tmp), {model for _, model in targets}, words)
        print(f"models built and saved in {time.perf_counter() - began:.1f} s", flush=True)
        for kind, model in targets:
            target = f"{kind}:{model}"
            for precision in precisions:
                watcher = load_watcher(kind, model, paths, device, precision, max(batches))
                tokens = watcher.tokenizer(corpus, truncation=True,
                                           max_length=watcher.max_length)["input_ids"]
                lengths = [len(t) for t in tokens]
                mean_tokens = statistics.fmean(lengths)
                arrival = [Item(str(i), "completion", t) for i, t in enumerate(corpus)]
                order = sorted(range(len(corpus)), key=lambda i: len(corpus[i]))
                by_length = [arrival[i] for i in order]
                sorted_lengths = [lengths[i] for i in order]
                for batch in batches:
                    watcher.max_batch = batch
                    for label, items, lens in (("arrival", arrival, lengths),
                                               ("sorted", by_length, sorted_lengths)):
                        result = run_cell(watcher, items, lens, batch, budget)
                        row = {"target": target, "kind": kind, "model": model,
                               "precision": precision, "batch": batch, "order": label,
                               **result}
                        rows.append(row)
                        print(f"  {target} {precision} {label:7} batch {batch:3}: "
                              f"{result['samples_per_s']:9.1f}/s  p50 "
                              f"{result['latency_ms']['p50']:8.2f} ms", flush=True)
                del watcher
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
    print()
    print_table(rows)
    payload = {"benchmark": "watchers_gpu", "when": datetime.now(UTC).isoformat(timespec="seconds"),
               "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
               "environment": env, "texts": n_texts, "mean_tokens": round(mean_tokens, 1),
               "cell_seconds": budget, "models": {m: MODELS[m] for _, m in targets},
               "results": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
