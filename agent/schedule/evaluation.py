"""`watchkeeper eval-drift`: how often each detector fires when a given share of the current
window comes from another corpus (level 0 is the false-alarm rate), with power curves."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from watchkeeper.detectors.watchers.base import WatcherSpec


@dataclass(frozen=True)
class DriftEvalRequest:
    """`watchkeeper eval-drift`: each detector's detection rate over `trials` windows of
    `window` texts, at each level (the share of the window drawn from `shifted`)."""

    reference: Path
    shifted: Path
    text_col: str | None = None  # for CSV/JSONL corpora; plain text is one text per line
    window: int = 1000
    levels: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)
    trials: int = 20
    detectors: tuple[str, ...] = ()  # default: every embedding detector
    out: Path | None = None  # the rates as JSON
    plot: Path | None = None  # power curves as an image


def read_texts(path: Path, text_col: str | None) -> list[str]:
    """One text per line, or a column of a CSV/TSV or JSONL file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        if not text_col:
            raise ValueError(f"{path}: --text-col is needed for a CSV file")
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            if text_col not in (rows.fieldnames or []):
                raise ValueError(f"{path}: no column {text_col!r} (has {rows.fieldnames})")
            return [r[text_col] for r in rows if r[text_col]]
    if suffix == ".jsonl":
        if not text_col:
            raise ValueError(f"{path}: --text-col is needed for a JSONL file")
        with path.open(encoding="utf-8-sig") as fh:
            return [str(row[text_col]) for line in fh if line.strip()
                    if (row := json.loads(line)).get(text_col)]
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def eval_drift(request: DriftEvalRequest) -> int:
    from watchkeeper.detectors.drift.registry import build, names
    from watchkeeper.detectors.drift.scenario import plot_power_curves, run_scenario
    from watchkeeper.detectors.watchers.embedding import SentenceEmbedder

    console = Console(stderr=True)
    levels = list(request.levels)
    chosen = list(request.detectors) or names("embedding")
    detectors: dict[str, Any] = {name: build(name) for name in chosen}
    reference_texts = read_texts(request.reference, request.text_col)
    shifted_texts = read_texts(request.shifted, request.text_col)
    embedder = SentenceEmbedder(WatcherSpec(name="eval", kind="embedding",
                                            options={"device": "auto", "precision": "auto"}))
    with Progress(console=console) as progress:
        total = len(reference_texts) + len(shifted_texts)
        task = progress.add_task("embedding", total=total)
        reference = embedder.encode_texts(reference_texts, lambda n: progress.advance(task, n))
        shifted = embedder.encode_texts(shifted_texts, lambda n: progress.advance(task, n))
        trials = progress.add_task("trials", total=len(levels) * request.trials * len(detectors))
        rates = run_scenario(reference, shifted, detectors, window=request.window, levels=levels,
                             trials=request.trials,
                             on_trial=lambda *_: progress.advance(trials))
    table = Table("detector", *(f"level {lv:g}" for lv in levels),
                  title=f"detection rate over {request.trials} trials (level 0 = false alarms)")
    for name, by_level in rates.items():
        table.add_row(name, *(f"{by_level[lv]:.2f}" for lv in levels))
    Console().print(table)
    payload = {name: {str(lv): rate for lv, rate in by_level.items()}
               for name, by_level in rates.items()}
    if request.out:
        request.out.write_text(json.dumps(payload, indent=2) + "\n")
    if request.plot:
        plot_power_curves(rates, request.plot)
    return 0
