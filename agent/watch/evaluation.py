"""`watchkeeper eval-watcher`: how well a watcher's label separates labelled texts.

The watcher (`--watcher NAME`) is looked up in this order:
1. a watcher configured in `watch.watchers` (built with registry.build, with the service's
   device and precision, its thresholds from the config);
2. a head trained with train-watcher under `<data_dir>/watchers/NAME` (`NAME@v2` for a
   version other than the current one), with the threshold chosen at training;
3. "profanity": the alt-profanity-check baseline, threshold 0.5 (the package's own);
   "prompt-injection": the built-in prompt-injection watcher (kind prompt_injection, its
   packaged model and default threshold), ready in every install.

Texts are scored the way the watch service scores them (agent/watch/scoring: sorted by
length, chunked to the watcher's max_batch, a failing sample isolated and counted). The report:
n, positives, AUROC ("auroc"), average precision, precision/recall/F1 at the threshold, the
confusion counts, a 10-bin calibration table (mean predicted, observed rate, count) with its
ECE, and throughput. Printed as tables, written as JSON with --out.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from watchkeeper.agent.config import Settings
from watchkeeper.agent.watch.labelled import Labelled, LabelledFile
from watchkeeper.detectors.watchers import (
    Embedder,
    Item,
    Watcher,
    WatcherSpec,
    default_thresholds,
)

BASELINE = "profanity"
# built-in watchers that need no config and no training: name -> kind
BUILTINS = {"prompt-injection": "prompt_injection"}
SCORE_CHUNK = 1024
DEFAULT_THRESHOLD = 0.5


class EvaluationError(ValueError):
    """The watcher or label asked for cannot be evaluated: the message says why."""


@dataclass(frozen=True)
class EvalRequest:
    """`watchkeeper eval-watcher`: score a labelled file with one watcher and report."""

    watcher: str  # a configured watcher, a trained head (NAME or NAME@vN), or "profanity"
    data: Sequence[LabelledFile]  # one or more labelled CSV/TSV or JSONL files (sources)
    label: str | None = None  # the watcher's label to evaluate (default: see pick_label)
    out: Path | None = None  # also write the report here as JSON


def console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=120)


def _options(settings: Settings, extra: dict[str, Any]) -> dict[str, Any]:
    return {"device": settings.watch.device, "precision": settings.watch.precision, **extra}


def resolve_watcher(settings: Settings, name: str) -> tuple[Watcher, dict[str, float], str]:
    """(watcher, configured thresholds, where it came from) for --watcher NAME."""
    from watchkeeper.agent.watch.loading import load_watcher
    from watchkeeper.detectors.watchers.trainable_head import (
        NAME,
        TrainableHead,
        head_root,
        versions,
    )

    spec = next((s for s in settings.watch.watchers if s.name == name), None)
    if spec is not None:
        watcher = load_watcher(spec, settings.watch, settings.data_dir)
        if isinstance(watcher, Embedder) and not isinstance(watcher, Watcher):
            raise EvaluationError(f"--watcher {name}: an {spec.kind} watcher makes embeddings, "
                                  "not scores; nothing to evaluate")
        return watcher, dict(spec.thresholds), "config"  # type: ignore[return-value]
    head, _, version = name.partition("@")
    if NAME.match(head) and versions(settings.data_dir, head):
        head_watcher = TrainableHead(WatcherSpec(name=head, kind="trainable_head", options=_options(
            settings, {"data_dir": str(settings.data_dir), "version": version or "current"})))
        return head_watcher, {}, f"trained head under {head_root(settings.data_dir, head)}"
    if name == BASELINE:
        from watchkeeper.detectors.watchers.profanity import ProfanityCheck

        spec = WatcherSpec(name=BASELINE, kind="profanity", options=_options(settings, {}))
        return ProfanityCheck(spec), {}, "alt-profanity-check baseline"
    if name in BUILTINS:
        from watchkeeper.agent.watch.loading import load_watcher

        spec = WatcherSpec(name=name, kind=BUILTINS[name], field="prompt")
        builtin = load_watcher(spec, settings.watch, settings.data_dir)
        return builtin, {}, f"built-in {BUILTINS[name]} watcher"  # type: ignore[return-value]
    configured = ", ".join(s.name for s in settings.watch.watchers) or "none"
    heads_dir = settings.data_dir / "watchers"
    trained = sorted(p.name for p in heads_dir.iterdir() if p.is_dir()) \
        if heads_dir.is_dir() else []
    raise EvaluationError(
        f"--watcher {name}: not a configured watcher (configured: {configured}), not a trained "
        f"head under {heads_dir} (trained: {', '.join(trained) or 'none'}), and not "
        f"{BASELINE!r} (the alt-profanity-check baseline) or a built-in "
        f"({', '.join(BUILTINS)})")


def pick_label(watcher: Watcher, thresholds: dict[str, float], wanted: str | None) -> str:
    labels: tuple[str, ...] = tuple(str(label) for label in watcher.labels)
    if wanted:
        if wanted not in labels:
            raise EvaluationError(f"label {wanted!r}: {watcher.name} scores {', '.join(labels)}")
        return wanted
    if len(labels) == 1:
        return labels[0]
    with_threshold = [label for label in labels if label in thresholds]
    if with_threshold:
        return with_threshold[0]
    return labels[0]


def pick_threshold(watcher: Watcher, thresholds: dict[str, float], label: str
                   ) -> tuple[float, str]:
    if label in thresholds:
        return float(thresholds[label]), "config"
    defaults = default_thresholds(watcher)
    if label in defaults:
        return float(defaults[label]), "watcher"
    return DEFAULT_THRESHOLD, "default"


def score_texts(watcher: Watcher, texts: Sequence[str], label: str,
                progress: Callable[[int], None] | None = None
                ) -> tuple[list[float | None], list[str]]:
    """One score per text (None where the watcher failed on it) and the distinct errors."""
    from watchkeeper.agent.watch import scoring

    scores: list[float | None] = [None] * len(texts)
    errors: list[str] = []
    for start in range(0, len(texts), SCORE_CHUNK):
        items = [Item(str(i), "completion", texts[i])
                 for i in range(start, min(start + SCORE_CHUNK, len(texts)))]
        for out in scoring.score(watcher, items):
            if out.scores is None or label not in out.scores:
                errors.append(out.error or f"no {label!r} score")
            else:
                scores[int(out.item.sample_id)] = float(out.scores[label])
        if progress is not None:
            progress(len(items))
    return scores, sorted(set(errors))


def evaluate(labels: Sequence[int], scores: Sequence[float], threshold: float
             ) -> dict[str, Any]:
    """The metrics block of a report (see detectors.watchers.head_training.binary_metrics)."""
    import numpy as np

    from watchkeeper.detectors.watchers.head_training import binary_metrics, calibration_table

    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(scores, dtype=np.float64)
    report: dict[str, Any] = binary_metrics(y, p, threshold)
    calibration = calibration_table(y, p)
    report["calibration"] = calibration["bins"]
    report["ece"] = calibration["ece"]
    return report


def source_names(parts: Sequence[Labelled]) -> list[str]:
    """What per-source tables call each part: its file name, or its path where names repeat."""
    names = [part.name for part in parts]
    return [part.source if names.count(part.name) > 1 else part.name for part in parts]


def per_source(parts: Sequence[Labelled], labels: Sequence[int], scores: Sequence[float | None],
               threshold: float) -> dict[str, dict[str, Any]]:
    """The metrics block of each source (rows in the order of the parts, concatenated)."""
    sources: dict[str, dict[str, Any]] = {}
    start = 0
    for name, part in zip(source_names(parts), parts, strict=True):
        rows = [i for i in range(start, start + len(part.labels)) if scores[i] is not None]
        start += len(part.labels)
        block = evaluate([labels[i] for i in rows], [scores[i] for i in rows],  # type: ignore[misc]
                         threshold) if rows else {"n": 0}
        block.pop("calibration", None)
        sources[name] = block
    return sources


def run_evaluation(settings: Settings, name: str, data: Labelled | Sequence[Labelled], *,
                   label: str | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Score every text of one or more sources; the report's metrics are over all rows, and
    with several sources `sources` holds each one's own."""
    parts = [data] if isinstance(data, Labelled) else list(data)
    texts = [text for part in parts for text in part.texts]
    labels = [value for part in parts for value in part.labels]
    watcher, thresholds, origin = resolve_watcher(settings, name)
    chosen = pick_label(watcher, thresholds, label)
    threshold, source = pick_threshold(watcher, thresholds, chosen)
    started = time.perf_counter()
    with progress_bar(f"scoring with {watcher.name}", len(texts),
                      enabled=show_progress) as advance:
        scores, errors = score_texts(watcher, texts, chosen, advance)
    seconds = time.perf_counter() - started
    kept = [i for i, s in enumerate(scores) if s is not None]
    if not kept:
        raise EvaluationError(f"{watcher.name} failed on every text: {errors[:3]}")
    report: dict[str, Any] = {
        "watcher": watcher.name, "origin": origin, "kind": type(watcher).__name__,
        "version": watcher.version, "device": watcher.device, "label": chosen,
        "threshold_source": source,
        "data": parts[0].describe() if len(parts) == 1 else {
            "source": "combined", "parts": [part.describe() for part in parts]},
        "evaluated": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    report.update(evaluate([labels[i] for i in kept],
                           [scores[i] for i in kept], threshold))  # type: ignore[misc]
    if len(parts) > 1:
        report["sources"] = per_source(parts, labels, scores, threshold)
    report["errors"] = len(scores) - len(kept)
    report["error_messages"] = errors[:10]
    report["seconds"] = round(seconds, 3)
    report["samples_per_s"] = round(len(scores) / seconds, 1) if seconds > 0 else None
    return report


@contextlib.contextmanager
def progress_bar(what: str, total: int, enabled: bool = True
                 ) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields `advance(n)`."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True,
                  disable=not enabled) as progress:
        task = progress.add_task(what, total=total)
        yield lambda n: progress.advance(task, n)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_report(report: dict[str, Any], title: str, out: Console | None = None) -> None:
    out = out or console()
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [("n", report["n"]), ("positives", report["positives"]),
            ("AUROC", report["auroc"]), ("average precision", report["average_precision"]),
            (f"threshold ({report.get('threshold_source', 'chosen')})", report["threshold"]),
            ("precision", report["precision"]), ("recall", report["recall"]),
            ("F1", report["f1"]), ("balanced accuracy", report["balanced_accuracy"])]
    if report.get("ece") is not None:
        rows.append(("ECE (10 bins)", report["ece"]))
    if report.get("ece_balanced") is not None:
        # the head's probabilities are prior-neutral: this is the calibration they aim at
        rows.append(("ECE, classes weighted equally", report["ece_balanced"]))
    for name, value in rows:
        table.add_row(name, fmt(value))
    c = report["confusion"]
    table.add_row("tp / fp / tn / fn", f"{c['tp']} / {c['fp']} / {c['tn']} / {c['fn']}")
    out.print(table)
    bins = report.get("calibration")
    if bins:
        cal = Table(title="calibration")
        for column in ("bin", "mean predicted", "observed rate", "count"):
            cal.add_column(column, justify="right")
        for b in bins:
            cal.add_row(f"{b['lower']:.1f}-{b['upper']:.1f}", fmt(b["mean_predicted"]),
                        fmt(b["observed_rate"]), str(b["count"]))
        out.print(cal)


def print_sources(sources: dict[str, dict[str, Any]], out: Console,
                  title: str = "per source") -> None:
    table = Table(title=title)
    for column in ("source", "n", "positives", "AUROC", "AP", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for name, block in sources.items():
        table.add_row(name, *(fmt(block.get(key)) for key in (
            "n", "positives", "auroc", "average_precision", "precision", "recall", "f1")))
    out.print(table)


def eval_watcher(settings: Settings, request: EvalRequest) -> int:
    parts = [file.load() for file in request.data]
    report = run_evaluation(settings, request.watcher, parts, label=request.label)
    out = console()
    print_report(report, f"{report['watcher']} {report['version']} · label {report['label']} "
                         f"· {', '.join(source_names(parts))}", out)
    if "sources" in report:
        print_sources(report["sources"], out)
    if report["errors"]:
        out.print(f"[yellow]{report['errors']} texts failed and are left out: "
                  f"{report['error_messages'][:3]}[/yellow]")
    if request.out is not None:
        request.out.parent.mkdir(parents=True, exist_ok=True)
        request.out.write_text(json.dumps(report, indent=2) + "\n")
        out.print(f"report written to {request.out}")
    return 0
