"""`watchkeeper train-watcher`: a trainable head from labelled texts, saved as a new version
under `<data_dir>/watchers/<name>/` and made current.

`train_from_examples(texts, labels, ...)` is the entry point that takes plain texts and 0/1
labels, so reviewed flags (the review queue's accepted/rejected samples) can train the next
version the same way a labelled file does. See detectors/watchers/head_training.py for the
method and docs/watchers.md for the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from watchkeeper.agent.config import Settings
from watchkeeper.agent.watch.evaluation import console, print_report, progress_bar
from watchkeeper.agent.watch.labelled import LabelledDataError, fingerprint, load_labelled
from watchkeeper.detectors.watchers.base import WatcherSpec
from watchkeeper.detectors.watchers.head_training import TrainResult


def train_from_examples(texts: Sequence[str], labels: Sequence[int], *, data_dir: Path | str,
                        name: str, label: str = "toxic", model: str | None = None,
                        device: str = "auto", precision: str = "auto",
                        threshold_rule: str = "balanced", seed: int = 0,
                        data: dict[str, Any] | None = None,
                        progress: Callable[[int], None] | None = None
                        ) -> tuple[Path, TrainResult]:
    """Embed `texts` (normalised), train the head on the 0/1 `labels`, save it as the next
    version of head `name` under data_dir and make it current. `data` describes where the
    examples came from (it lands in meta.json; a fingerprint of the pairs is always added).
    Returns the version's directory and the training result (validation metrics inside)."""
    from watchkeeper.detectors.watchers.embedding import PACKAGED, SentenceEmbedder
    from watchkeeper.detectors.watchers.head_training import (
        check_labels,
        check_threshold_rule,
        normalise_text,
        train_head,
    )
    from watchkeeper.detectors.watchers.trainable_head import head_root, save_head

    head_root(data_dir, name)  # a bad name fails before minutes of embedding
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    check_labels(labels)
    check_threshold_rule(threshold_rule)
    embedder = SentenceEmbedder(WatcherSpec(
        name="train.embedding", kind="embedding",
        options={"model": model or PACKAGED, "device": device, "precision": precision}))
    x = embedder.encode_texts([normalise_text(t) for t in texts], progress=progress)
    result = train_head(x, labels, seed=seed, threshold_rule=threshold_rule)
    described = {"source": "examples", "rows": len(labels), "positives": int(sum(labels)),
                 **(data or {}), "fingerprint": fingerprint(texts, labels)}
    path = save_head(data_dir, name, result, label=label, embedder=embedder, data=described)
    return path, result


@dataclass(frozen=True)
class TrainRequest:
    """`watchkeeper train-watcher`: the next version of head `name`, trained on a labelled file
    (data, text_col, label_col), reviewed flags (from_reviews), or both."""

    name: str
    data: Path | None = None
    text_col: str | None = None
    label_col: str | None = None
    positive: str | None = None  # label values that count as positive, comma-separated
    from_reviews: bool = False
    source: str | None = None  # whose flags from_reviews reads (default: watcher:NAME)
    api: str | None = None  # a running agent's API (default: the store's owner, if one runs)
    token: str | None = None
    threshold_rule: str = "balanced"
    label: str = "toxic"
    embedding_model: str | None = None  # default: the packaged MiniLM


class Examples(Protocol):
    """Labelled texts from one place: a file (labelled.Labelled) or reviews
    (review.examples.ReviewedFlags)."""

    texts: list[str]
    labels: list[int]

    def describe(self) -> dict[str, Any]: ...


def gather(settings: Settings, request: TrainRequest) -> list[tuple[str, Examples]]:
    """--data FILE and/or --from-reviews, each with a name for the console."""
    parts: list[tuple[str, Examples]] = []
    if request.data is not None:
        if not (request.text_col and request.label_col):
            raise LabelledDataError("--data needs --text-col and --label-col")
        parts.append((str(request.data), load_labelled(request.data, request.text_col,
                                                       request.label_col, request.positive)))
    if request.from_reviews:
        from watchkeeper.agent.review.backend import open_reviews
        from watchkeeper.agent.review.examples import reviewed_flags

        source = request.source or f"watcher:{request.name}"
        with open_reviews(settings, request.api, request.token) as reviews:
            parts.append((f"reviews of {source} flags", reviewed_flags(reviews, source)))
    if not parts:
        raise LabelledDataError("nothing to train on: give --data FILE, --from-reviews, or both")
    return parts


def train_watcher(settings: Settings, request: TrainRequest) -> int:
    parts = gather(settings, request)
    out = console()
    for where, part in parts:
        positives = sum(part.labels)
        out.print(f"{len(part.labels)} labelled texts from {where}: {positives} positive, "
                  f"{len(part.labels) - positives} negative")
    texts = [text for _, part in parts for text in part.texts]
    labels = [label for _, part in parts for label in part.labels]
    described = [part.describe() for _, part in parts]
    with progress_bar("embedding", len(texts)) as advance:
        path, result = train_from_examples(
            texts, labels, data_dir=settings.data_dir, name=request.name,
            label=request.label, model=request.embedding_model,
            device=settings.watch.device, precision=settings.watch.precision,
            threshold_rule=request.threshold_rule,
            data=described[0] if len(described) == 1 else {"source": "combined",
                                                           "parts": described},
            progress=advance)
    metrics = {**result.metrics, "threshold_source": f"chosen: {result.threshold_rule}"}
    metrics["calibration"] = metrics["calibration"]["bins"]
    metrics["ece"] = result.metrics["calibration"]["ece"]
    metrics["ece_balanced"] = result.metrics["calibration_balanced"]["ece"]
    split = result.metrics["split"]
    print_report(metrics, f"{request.name} {path.name} · validation split ({split['validation']} "
                          f"of {split['train'] + split['validation']} rows, stratified)", out)
    out.print(f"C={result.c:g} (class-balanced logistic regression), train AUROC "
              f"{result.metrics['train_auroc']:.3f}")
    out.print(f"saved {request.name} {path.name} (current): {path}")
    return 0
