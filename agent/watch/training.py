"""`watchkeeper train-watcher`: a trainable head from labelled texts, saved as a new version
under `<data_dir>/watchers/<name>/` and made current when it is not worse than the current one
on the rows every version holds back (is_held_back).

`train_from_examples(texts, labels, ...)` is the entry point that takes plain texts and 0/1
labels, so reviewed flags (the review queue's accepted/rejected samples) can train the next
version the same way a labelled file does. See detectors/watchers/head_training.py for the
method and docs/watchers.md for the numbers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from rich.console import Console
from rich.table import Table

from watchkeeper.agent.config import Settings
from watchkeeper.agent.watch.evaluation import (
    console,
    fmt,
    print_report,
    print_sources,
    progress_bar,
)
from watchkeeper.agent.watch.labelled import (
    Labelled,
    LabelledDataError,
    LabelledFile,
    fingerprint,
)
from watchkeeper.detectors.watchers.base import WatcherSpec
from watchkeeper.detectors.watchers.encoder_tuning import Tuning
from watchkeeper.detectors.watchers.head_training import TrainResult

if TYPE_CHECKING:
    from watchkeeper.detectors.watchers.embedding import SentenceEmbedder

# Rows of every source that no version trains on (chosen by hash, see is_held_back), and the
# smallest source that gives any up: a few dozen reviewed flags train on every row.
HELD_BACK_PERCENT = 20
MIN_HELD_BACK_SOURCE = 100
# Share of the trained-on rows that choose C, the combination and the threshold.
VALIDATION = 0.2
# A new version more than this much AUROC worse on any source's held-back rows stays behind.
PROMOTION_TOLERANCE = 0.01


def companion_scores(texts: Sequence[str], combine: str) -> tuple[list[float] | None, str | None]:
    """The profanity model's P(profane) for each (normalised) text and its version, or
    (None, None) where the head is not to be combined; "auto" without the package trains a
    plain head, an explicit rule without it fails."""
    from watchkeeper.detectors.watchers.base import WatcherLoadError
    from watchkeeper.detectors.watchers.profanity import ProfanityCheck
    from watchkeeper.detectors.watchers.trainable_head import COMPANION

    if combine == "none":
        return None, None
    try:
        model = ProfanityCheck(WatcherSpec(name=f"train.{COMPANION}", kind=COMPANION))
    except WatcherLoadError:
        if combine == "auto":
            return None, None
        raise
    return model.predict_proba(texts), model.version


def train_from_examples(texts: Sequence[str], labels: Sequence[int], *, data_dir: Path | str,
                        name: str, label: str = "toxic", model: str | None = None,
                        device: str = "auto", precision: str = "auto",
                        threshold_rule: str = "balanced", seed: int = 0,
                        data: dict[str, Any] | None = None,
                        sources: Sequence[str] | None = None,
                        weights: Sequence[float] | None = None, combine: str = "auto",
                        make_current: bool = True, tuning: Tuning | None = None,
                        progress: Callable[[int], None] | None = None
                        ) -> tuple[Path, TrainResult]:
    """Embed `texts` (normalised), train the head on the 0/1 `labels` (rows of several
    `sources` balanced, weighted by `weights`; combined with the profanity model by
    `combine`: auto, logit_mean, max or none), save it as the next version of head `name`
    under data_dir and, with make_current, make it current. `data` describes where the
    examples came from (it lands in meta.json; a fingerprint of the pairs is always added).
    With `tuning`, the encoder's top layers are first fine-tuned on the training split
    (`tune_on_training_split`) and the head is trained on the tuned embeddings. `progress(n)`
    reports work done, training_work(len(texts), tuning) in all. Returns the version's
    directory and the training result (validation metrics inside)."""
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
    normalised = [normalise_text(t) for t in texts]
    companion, companion_version = companion_scores(normalised, combine)
    x = embedder.encode_texts(normalised, progress=progress)
    tuned: tuple[dict[str, Any], Tuning] | None = None
    if tuning is not None:
        layers = tune_on_training_split(embedder, normalised, x, labels, weights, sources,
                                        tuning, seed, progress)
        tuned = (layers, tuning)
        embedder = embedder.tuned(layers, f"tuned{tuning.layers}")
        x = embedder.encode_texts(normalised, progress=progress)
    result = train_head(x, labels, weights=weights, sources=sources, companion=companion,
                        combine=combine if companion is not None else "none", seed=seed,
                        validation=VALIDATION, threshold_rule=threshold_rule)
    described = {"source": "examples", "rows": len(labels), "positives": int(sum(labels)),
                 **(data or {}), "fingerprint": fingerprint(texts, labels)}
    path = save_head(data_dir, name, result, label=label, embedder=embedder, data=described,
                     companion=companion_version, make_current=make_current, tuned=tuned)
    return path, result


def training_work(rows: int, tuning: Tuning | None) -> int:
    """What train_from_examples reports to its progress callback for `rows` texts: each
    text embedded once, or with tuning twice, plus the training split through the lower
    layers and one per tuning step."""
    if tuning is None:
        return rows
    tuned_rows = rows - math.ceil(VALIDATION * rows)
    return 2 * rows + tuned_rows + tuning.steps(tuned_rows)


def tune_on_training_split(embedder: SentenceEmbedder, texts: Sequence[str], x: np.ndarray,
                           labels: Sequence[int], weights: Sequence[float] | None,
                           sources: Sequence[str] | None, tuning: Tuning, seed: int,
                           progress: Callable[[int], None] | None) -> dict[str, Any]:
    """The encoder's tuned top layers, trained on the rows `train_head` will train on (its
    split, same seed): the validation rows that choose C, the combination and the threshold
    stay unseen by the encoder too. Starts from a linear head on the frozen embeddings."""
    from watchkeeper.detectors.watchers.encoder_tuning import tune_encoder
    from watchkeeper.detectors.watchers.head_training import (
        balanced_weights,
        fit_linear,
        split_rows,
    )

    y = np.asarray(labels, dtype=np.int64)
    source = np.asarray(sources if sources is not None else [""] * len(y), dtype=object)
    importance = np.asarray(weights if weights is not None else np.ones(len(y)))
    train_rows, _ = split_rows(y, source, VALIDATION, seed)
    w = balanced_weights(y[train_rows], source[train_rows], importance[train_rows])
    start = fit_linear(x[train_rows], y[train_rows], w, 1.0, seed)
    return tune_encoder(embedder, [texts[i] for i in train_rows], y[train_rows], w, start,
                        tuning, progress)


@dataclass(frozen=True)
class TrainRequest:
    """`watchkeeper train-watcher`: the next version of head `name`, trained on labelled
    files (data), reviewed flags (from_reviews), or both, and made current unless it is worse
    than the current version on the held-back rows (or `force`)."""

    name: str
    data: Sequence[LabelledFile] = ()
    from_reviews: bool = False
    source: str | None = None  # whose flags from_reviews reads (default: watcher:NAME)
    api: str | None = None  # a running agent's API (default: the store's owner, if one runs)
    token: str | None = None
    threshold_rule: str = "balanced"
    from_events: str | None = None  # an evaluation name: received events as labels
    event_threshold: float | None = None  # default: evaluations.receive.thresholds[name]
    event_field: Literal["completion", "prompt"] = "completion"
    augment_axes: tuple[str, ...] = ()  # counterfactual copies for these lexicon axes
    combine: str = "auto"  # with the profanity model: auto, logit_mean, max or none
    force: bool = False  # make the new version current even if it is worse
    tolerance: float = PROMOTION_TOLERANCE
    label: str = "toxic"
    embedding_model: str | None = None  # default: the packaged MiniLM
    tuning: Tuning | None = None  # fine-tune the encoder's top layers (--tune-layers)


class Examples(Protocol):
    """Labelled texts from one place: a file (labelled.Labelled) or reviews
    (review.examples.ReviewedFlags)."""

    texts: list[str]
    labels: list[int]

    def describe(self) -> dict[str, Any]: ...


@dataclass
class Part:
    """One source of examples, split into the rows trained on and the rows held back."""

    name: str  # what per-source tables call it
    examples: Examples
    train: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)

    def weights(self) -> list[float]:
        return list(getattr(self.examples, "weights", None) or [1.0] * len(self.examples.labels))

    def held_back(self) -> Labelled:
        rows = self.held
        return Labelled([self.examples.texts[i] for i in rows],
                        [self.examples.labels[i] for i in rows], self.name, "", "")


def is_held_back(text: str) -> bool:
    """Whether a text is one of the rows no version trains on: decided by a hash of the
    normalised text, not a random draw, so every version holds back the same rows and two
    versions are compared on rows neither has seen (a duplicate lands on the same side)."""
    from watchkeeper.detectors.watchers.head_training import normalise_text

    digest = hashlib.sha256(normalise_text(text).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % 100 < HELD_BACK_PERCENT


def split(name: str, examples: Examples) -> Part:
    """Held-back rows, when the source is large enough to spare them and they hold both
    classes; otherwise every row trains."""
    part = Part(name, examples)
    held = [is_held_back(t) for t in examples.texts]
    kept = [examples.labels[i] for i, h in enumerate(held) if h]
    if len(examples.labels) >= MIN_HELD_BACK_SOURCE and 0 < sum(kept) < len(kept):
        part.train = [i for i, h in enumerate(held) if not h]
        part.held = [i for i, h in enumerate(held) if h]
    else:
        part.train = list(range(len(examples.labels)))
    return part


def gather(settings: Settings, request: TrainRequest) -> list[Part]:
    """--data FILE ..., --from-reviews and --from-events, each a named source."""
    found: list[tuple[str, Examples]] = []
    for file in request.data:
        loaded = file.load()
        found.append((loaded.source, loaded))
    if request.from_reviews:
        from watchkeeper.agent.review.backend import open_reviews
        from watchkeeper.agent.review.examples import reviewed_flags

        source = request.source or f"watcher:{request.name}"
        with open_reviews(settings, request.api, request.token) as reviews:
            found.append((f"reviews of {source} flags", reviewed_flags(reviews, source)))
    if request.from_events:
        from watchkeeper.agent.review.events import event_labels
        from watchkeeper.agent.review.examples import ReviewedFlags

        reviewed = frozenset(text for _, part in found if isinstance(part, ReviewedFlags)
                             for text in part.texts)
        found.append((f"{request.from_events} evaluation events", event_labels(
            settings, request.from_events, threshold=request.event_threshold,
            text_field=request.event_field, reviewed=reviewed, api=request.api,
            token=request.token)))
    if not found:
        raise LabelledDataError("nothing to train on: give --data FILE, --from-reviews, "
                                "--from-events NAME, or several")
    names = [Path(where).name for where, _ in found]
    return [split(where if names.count(short) > 1 else short, examples)
            for (where, examples), short in zip(found, names, strict=True)]


def augment(texts: list[str], axes: Sequence[str]) -> list[tuple[int, str]]:
    """Counterfactual copies of the training texts that mention a group of these axes of the
    bias lexicon ("all": every axis): each with the label and source of its original, so the
    head learns that the group alone is no evidence (measured: bench/audit_toxicity.py). The
    held-back rows are left as they are: versions are compared on real text."""
    from watchkeeper.detectors.bias import Lexicon
    from watchkeeper.detectors.bias.counterfactual import counterfactual_copies

    lexicon = Lexicon.default()
    chosen = list(lexicon.axes) if "all" in axes else list(axes)
    unknown = [a for a in chosen if a not in lexicon.axes]
    if unknown:
        raise LabelledDataError(f"--augment-swaps: unknown axis {unknown[0]!r} (known: "
                                f"{', '.join(lexicon.axes)}, or all)")
    return counterfactual_copies(texts, lexicon, chosen)


def trained_on(meta: dict[str, Any], described: dict[str, Any]) -> bool:
    """Whether a version's training data (meta.json "data") included a source."""
    data = meta.get("data") or {}
    parts = data.get("parts") or [data]
    return any(p.get("source") == described.get("source")
               and p.get("flag_source") == described.get("flag_source") for p in parts)


def held_back_figures(settings: Settings, name: str, version: str, parts: list[Part]
                      ) -> dict[str, dict[str, Any]]:
    """AUROC (and more) of one version on each source's held-back rows."""
    from watchkeeper.agent.watch.evaluation import run_evaluation, source_names

    held = [part.held_back() for part in parts if part.held]
    report = run_evaluation(settings, f"{name}@{version}", held, show_progress=False)
    if len(held) > 1:
        return dict(report["sources"])
    return {source_names(held)[0]: report}


def promotion(settings: Settings, request: TrainRequest, parts: list[Part], new: str,
              out: Console) -> bool:
    """Compare the new version with the current one on the held-back rows, print the table,
    and say whether the new one may become current."""
    from watchkeeper.detectors.watchers.trainable_head import (
        artifact_dir,
        current_version,
        load_meta,
    )

    current = current_version(settings.data_dir, request.name)
    if current is None or not any(part.held for part in parts):
        if current is not None:
            out.print("no source had rows to hold back: nothing to compare the versions on")
        return True
    try:
        before = held_back_figures(settings, request.name, current, parts)
        current_meta = load_meta(artifact_dir(settings.data_dir, request.name, current))
    except Exception as exc:  # a version that no longer loads cannot block its successor
        out.print(f"[yellow]current {current} cannot be evaluated ({exc}); promoting[/yellow]")
        return True
    after = held_back_figures(settings, request.name, new, parts)
    table = Table(title=f"held-back rows: {current} (current) vs {new}")
    for column in ("source", "rows", f"{current} trained on it", f"{current} AUROC",
                   f"{new} AUROC", "change"):
        table.add_column(column, justify="left" if column == "source" else "right")
    worse = []
    for part in parts:
        if part.name not in after:
            continue
        old_auroc, new_auroc = before[part.name]["auroc"], after[part.name]["auroc"]
        change = None if old_auroc is None or new_auroc is None else new_auroc - old_auroc
        if change is not None and change < -request.tolerance:
            worse.append(part.name)
        seen = "in-source" if trained_on(current_meta, part.examples.describe()) \
            else "cross-source"
        table.add_row(part.name, str(len(part.held)), seen, fmt(old_auroc), fmt(new_auroc),
                      "-" if change is None else f"{change:+.3f}")
    out.print(table)
    if not worse:
        return True
    out.print(f"{new} is worse than {current} by more than {request.tolerance:g} AUROC on "
              f"{', '.join(worse)}" + (": promoted anyway (--force)" if request.force else ""))
    return request.force


def train_watcher(settings: Settings, request: TrainRequest) -> int:
    """Train on the rows not held back, then make the new version current if it is not
    worse than the current one on the held-back rows. Exit status 3: trained, not promoted."""
    from watchkeeper.detectors.watchers.trainable_head import set_current

    parts = gather(settings, request)
    out = console()
    for part in parts:
        positives = sum(part.examples.labels)
        out.print(f"{len(part.examples.labels)} labelled texts from {part.name}: {positives} "
                  f"positive, {len(part.examples.labels) - positives} negative; "
                  f"{len(part.held)} held back")
    texts = [part.examples.texts[i] for part in parts for i in part.train]
    labels = [part.examples.labels[i] for part in parts for i in part.train]
    weights = [w[i] for part in parts for w in (part.weights(),) for i in part.train]
    sources = [part.name for part in parts for _ in part.train]
    if request.augment_axes:
        copies = augment(texts, request.augment_axes)
        out.print(f"{len(copies)} counterfactual copies ({', '.join(request.augment_axes)}) of "
                  f"{len({j for j, _ in copies})} training texts")
        texts += [text for _, text in copies]
        labels += [labels[j] for j, _ in copies]
        weights += [weights[j] for j, _ in copies]
        sources += [sources[j] for j, _ in copies]
    described = [part.examples.describe() for part in parts]
    tuning = request.tuning
    with progress_bar("embedding" if tuning is None else "embedding, tuning",
                      training_work(len(texts), tuning)) as advance:
        path, result = train_from_examples(
            texts, labels, data_dir=settings.data_dir, name=request.name,
            label=request.label, model=request.embedding_model,
            device=settings.watch.device, precision=settings.watch.precision,
            threshold_rule=request.threshold_rule, sources=sources, weights=weights,
            combine=request.combine, make_current=False, tuning=tuning,
            data=described[0] if len(described) == 1 else {"source": "combined",
                                                           "parts": described},
            progress=advance)
    metrics = {**result.metrics, "threshold_source": f"chosen: {result.threshold_rule}"}
    metrics["calibration"] = metrics["calibration"]["bins"]
    metrics["ece"] = result.metrics["calibration"]["ece"]
    metrics["ece_balanced"] = result.metrics["calibration_balanced"]["ece"]
    split_sizes = result.metrics["split"]
    print_report(metrics, f"{request.name} {path.name} · validation split "
                          f"({split_sizes['validation']} of "
                          f"{split_sizes['train'] + split_sizes['validation']} rows, stratified)",
                 out)
    if "sources" in result.metrics:
        print_sources(result.metrics["sources"], out, "validation split, per source")
    combined = result.metrics["combine"]
    out.print(f"C={result.c:g} (weighted logistic regression), train AUROC "
              f"{result.metrics['train_auroc']:.3f}; combined with the profanity model: "
              f"{combined['rule']} ({combined['asked']})")
    if promotion(settings, request, parts, path.name, out):
        set_current(settings.data_dir, request.name, path.name)
        out.print(f"saved {request.name} {path.name} (current): {path}")
        return 0
    out.print(f"saved {request.name} {path.name}, [bold]not current[/bold]: {path} (make it "
              f"current with --force, or write {path.name} into {path.parent / 'current'})")
    return 3
