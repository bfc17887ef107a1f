"""Trainable head (kind "trainable_head"): sentence embeddings (embedding.SentenceEmbedder)
plus a logistic-regression head trained by `watchkeeper train-watcher` from labelled texts
(and, later, from reviewed flags). One label, P(positive).

Artifacts are versioned under the data dir:

    <data_dir>/watchers/<name>/current        the active version, e.g. "v3" (a plain file)
    <data_dir>/watchers/<name>/v3/head.npz    coef (dim,) and intercept, float arrays
    <data_dir>/watchers/<name>/v3/meta.json   embedding model, label, threshold, metrics,
                                              created time, data fingerprint
    <data_dir>/watchers/<name>/v3/encoder.safetensors
                                              the tuned top layers of the encoder, when it
                                              was trained with --tune-layers

A version directory is written under a temporary name and renamed into place, and `current`
is replaced atomically, so a watcher never loads half an artifact.

Security: the head is stored as plain arrays (numpy .npz loaded with allow_pickle=False) and
JSON, never as a pickle. joblib/pickle files execute code when loaded, so anyone who can
write a model file could run code inside every watch process; plain arrays cannot. A tuned
encoder's layers are a safetensors file (tensors only), its SHA-256 pinned in meta.json, and
every tensor must name a weight of the packaged model with that weight's shape. Heads are
also only ever read from `<data_dir>/watchers/`, with names and versions checked so that no
option can point the loader elsewhere. The price: only linear heads (logistic regression),
which is also what generalises best on sentence embeddings here (docs/watchers.md).

Options (`options.TrainableHeadOptions`, besides the injected "device" and "precision"):
`name` (default: the watcher's name), `data_dir` (default: $WATCHKEEPER_DATA_DIR or
.watchkeeper, the Settings default), `version` ("current" or a version such as "v2"),
`max_batch` (64).

A head may be combined with the profanity model (meta.json "combine": the rule and the
alt-profanity-check version it was trained with; head_training.combine_scores): the score is
then the combination, and the threshold applies to it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from watchkeeper.detectors.watchers.base import Item, WatcherLoadError, WatcherSpec
from watchkeeper.detectors.watchers.embedding import SentenceEmbedder
from watchkeeper.detectors.watchers.encoder_tuning import Tuning
from watchkeeper.detectors.watchers.head_training import (
    LinearHead,
    TrainResult,
    combine_scores,
    normalise_text,
)
from watchkeeper.detectors.watchers.model_files import file_sha256
from watchkeeper.detectors.watchers.options import EmbeddingOptions, TrainableHeadOptions
from watchkeeper.detectors.watchers.profanity import ProfanityCheck

FORMAT = 1
DEFAULT_LABEL = "toxic"
COMPANION = "profanity"  # the model a head may be combined with (meta.json "combine")
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
VERSION = re.compile(r"^v(\d{1,9})$")
TUNED_FILE = "encoder.safetensors"


def default_data_dir() -> Path:
    return Path(os.environ.get("WATCHKEEPER_DATA_DIR") or ".watchkeeper")


def head_root(data_dir: Path | str, name: str) -> Path:
    """<data_dir>/watchers/<name>, for a name that cannot climb out of it."""
    if not NAME.match(name) or name in (".", ".."):
        raise WatcherLoadError(f"trainable head name {name!r}: use lower-case letters, digits, "
                               "'_', '.', '-' (starting with a letter or digit)")
    return Path(data_dir) / "watchers" / name


def versions(data_dir: Path | str, name: str) -> list[str]:
    """The complete versions of a head, oldest first."""
    root = head_root(data_dir, name)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in root.iterdir()
             if (m := VERSION.match(p.name)) and (p / "meta.json").is_file()]
    return [name for _, name in sorted(found)]


def current_version(data_dir: Path | str, name: str) -> str | None:
    pointer = head_root(data_dir, name) / "current"
    if not pointer.is_file():
        return None
    return pointer.read_text().strip() or None


def artifact_dir(data_dir: Path | str, name: str, version: str = "current") -> Path:
    """The directory of one version ("current" follows the pointer), checked to exist."""
    root = head_root(data_dir, name)
    wanted = current_version(data_dir, name) if version == "current" else version
    if wanted is None:
        trained = versions(data_dir, name)
        hint = f" (versions: {', '.join(trained)})" if trained else ""
        raise WatcherLoadError(f"no trained head {name!r} under {root}: train one with "
                               f"`watchkeeper train-watcher --name {name} ...`{hint}")
    if not VERSION.match(wanted):
        raise WatcherLoadError(f"trainable head {name!r}: bad version {wanted!r} "
                               "(expected v1, v2, ...)")
    path = root / wanted
    if not (path / "meta.json").is_file() or not (path / "head.npz").is_file():
        raise WatcherLoadError(f"trainable head {name!r} version {wanted}: {path} is missing "
                               "meta.json or head.npz")
    return path


def save_head(data_dir: Path | str, name: str, result: TrainResult, *, label: str,
              embedder: SentenceEmbedder, data: dict[str, Any], companion: str | None = None,
              extra: dict[str, Any] | None = None, make_current: bool = True,
              tuned: tuple[dict[str, Any], Tuning] | None = None) -> Path:
    """Write a new version (v<N+1>) of the head and point `current` at it; returns its dir.
    `tuned`: the encoder's tuned layers (tensors by name) and how they were tuned."""
    root = head_root(data_dir, name)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        np.savez(staging / "head.npz", coef=result.head.coef.astype(np.float32),
                 intercept=np.array([result.head.intercept], dtype=np.float64))
        encoder: dict[str, Any] = {}
        if tuned is not None:
            from safetensors.torch import save_file

            weights, tuning = tuned
            save_file({k: v.contiguous() for k, v in weights.items()}, staging / TUNED_FILE)
            encoder["tuned"] = {"file": TUNED_FILE, "sha256": file_sha256(staging / TUNED_FILE),
                                "layers": tuning.layers, "epochs": tuning.epochs,
                                "batch": tuning.batch, "lr": tuning.lr, "seed": tuning.seed}
        existing = versions(data_dir, name)
        number = int(existing[-1][1:]) + 1 if existing else 1
        meta: dict[str, Any] = {
            "format": FORMAT,
            "kind": "trainable_head",
            "name": name,
            "label": label,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "embedding": {
                "model": embedder.model_id,
                "path": str(embedder.path),
                "version": embedder.version,
                "fingerprint": embedder.fingerprint,
                "dimensions": embedder.dimensions,
                "max_length": embedder.max_length,
                "pooling": embedder.pooling,
                "precision": "bf16" if embedder.dtype is not None and "bfloat16" in str(
                    embedder.dtype) else (str(embedder.dtype) if embedder.dtype else "fp32"),
                **encoder,
            },
            "normalise_text": True,
            "head": {"type": "logistic_regression", "class_weight": "balanced",
                     "C": result.c, "file": "head.npz"},
            "combine": {"rule": result.combine, "with": COMPANION if result.combine != "none"
                        else None, "version": companion if result.combine != "none" else None},
            "threshold": result.threshold,
            "threshold_rule": result.threshold_rule,
            "metrics": result.metrics,
            "data": data,
            **(extra or {}),
        }
        while True:
            version = f"v{number}"
            meta["version"] = version
            (staging / "meta.json").write_text(json.dumps(meta, indent=2, default=float) + "\n")
            try:
                os.rename(staging, root / version)  # fails if a concurrent trainer took it
                break
            except OSError:
                if not (root / version).exists():
                    raise
                number += 1
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if make_current:
        set_current(data_dir, name, version)
    return root / version


def set_current(data_dir: Path | str, name: str, version: str) -> None:
    """Point `current` at an existing version (also how to roll back)."""
    artifact_dir(data_dir, name, version)
    root = head_root(data_dir, name)
    tmp = root / f".current-{uuid.uuid4().hex}"
    tmp.write_text(version + "\n")
    os.replace(tmp, root / "current")


def load_meta(path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((path / "meta.json").read_text())
    if meta.get("format") != FORMAT or meta.get("kind") != "trainable_head":
        raise WatcherLoadError(f"{path}/meta.json: not a trainable head of format {FORMAT}")
    return meta


def load_tuned(path: Path, tuned: Any, embedder: SentenceEmbedder
               ) -> SentenceEmbedder:
    """The embedder with a version's tuned layers: the file must be the one meta.json pins."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = path / TUNED_FILE
    if not isinstance(tuned, dict) or tuned.get("file") != TUNED_FILE:
        raise WatcherLoadError(f"{path}: meta.json's embedding.tuned is not the record "
                               "train-watcher writes")
    if not file.is_file():
        raise WatcherLoadError(f"{path}: meta.json names tuned encoder layers but "
                               f"{TUNED_FILE} is missing")
    if file_sha256(file) != tuned.get("sha256"):
        raise WatcherLoadError(f"{file}: SHA-256 differs from the one meta.json pins "
                               "(the file was changed after training)")
    try:
        weights = load_file(file)
    except (SafetensorError, OSError) as exc:
        raise WatcherLoadError(f"{file}: not a safetensors file ({exc})") from exc
    return embedder.tuned(weights, f"{tuned['sha256'][:12]}")


def load_linear_head(path: Path, dimensions: int) -> LinearHead:
    with np.load(path / "head.npz", allow_pickle=False) as arrays:
        coef = np.asarray(arrays["coef"], dtype=np.float32).reshape(-1)
        intercept = float(np.asarray(arrays["intercept"]).reshape(-1)[0])
    if coef.shape != (dimensions,):
        raise WatcherLoadError(f"{path}/head.npz: {coef.shape[0]} weights for "
                               f"{dimensions}-dimensional embeddings")
    return LinearHead(coef, intercept)


class TrainableHead:
    """Watcher: one label (the head's, "toxic" by default), P(positive) per text."""

    def __init__(self, spec: WatcherSpec, options: TrainableHeadOptions | None = None) -> None:
        options = TrainableHeadOptions.of(spec) if options is None else options
        self.name = spec.name
        self.head_name = options.name or spec.name
        self.data_dir = options.data_dir or default_data_dir()
        try:
            self.path = artifact_dir(self.data_dir, self.head_name, options.version or "current")
            self.meta = load_meta(self.path)
        except (OSError, ValueError) as exc:
            raise WatcherLoadError(f"watcher {spec.name!r}: cannot read the trained head "
                                   f"{self.head_name!r} under {self.data_dir}: {exc}") from exc
        embedding = self.meta["embedding"]
        self.embedder = SentenceEmbedder(
            WatcherSpec(name=f"{spec.name}.embedding", kind="embedding"),
            EmbeddingOptions(model=embedding["model"], max_length=embedding["max_length"],
                             max_batch=options.max_batch, device=options.device,
                             precision=options.precision))
        if self.embedder.fingerprint != embedding["fingerprint"]:
            raise WatcherLoadError(
                f"watcher {spec.name!r}: head {self.head_name} {self.path.name} was trained on "
                f"embeddings of {embedding['version']}, but {embedding['model']!r} now loads "
                f"{self.embedder.version}: retrain the head")
        if embedding.get("tuned"):
            self.embedder = load_tuned(self.path, embedding["tuned"], self.embedder)
        self.head = load_linear_head(self.path, self.embedder.dimensions)
        combine = self.meta.get("combine") or {}
        self.combine = str(combine.get("rule") or "none")
        self.companion = self._companion(spec, combine)
        self.label = str(self.meta.get("label") or DEFAULT_LABEL)
        self.labels: tuple[str, ...] = (self.label,)
        self.threshold = float(self.meta["threshold"])
        self.default_thresholds = {self.label: self.threshold}
        self.normalise = bool(self.meta.get("normalise_text", True))
        self.version = str(self.meta["version"])
        self.device = self.embedder.device
        self.max_batch = self.embedder.max_batch

    def _companion(self, spec: WatcherSpec, combine: dict[str, Any]) -> ProfanityCheck | None:
        """The profanity model when the head was trained combined with it; its version must
        be the one the threshold was chosen with."""
        if self.combine == "none":
            return None
        if combine.get("with") != COMPANION:
            raise WatcherLoadError(f"watcher {spec.name!r}: head {self.head_name} {self.path.name}"
                                   f" combines with {combine.get('with')!r}; only "
                                   f"{COMPANION!r} is known")
        companion = ProfanityCheck(WatcherSpec(name=f"{spec.name}.{COMPANION}", kind=COMPANION))
        if combine.get("version") and companion.version != combine["version"]:
            raise WatcherLoadError(
                f"watcher {spec.name!r}: head {self.head_name} {self.path.name} was trained "
                f"combined with {combine['version']}, but {companion.version} is installed: "
                "retrain the head")
        return companion

    def score(self, items: Sequence[Item]) -> list[dict[str, float]]:
        return [{self.label: p} for p in self.predict_proba([item.text for item in items])]

    def predict_proba(self, texts: Sequence[str], progress: Any = None) -> list[float]:
        """P(label) for each text, in order (the texts are normalised as in training)."""
        if not texts:
            return []
        if self.normalise:
            texts = [normalise_text(t) for t in texts]
        x = self.embedder.encode_texts(texts, progress=progress)
        other = None if self.companion is None else np.asarray(
            self.companion.predict_proba(texts))
        return [float(p) for p in combine_scores(self.head.predict_proba(x), other,
                                                 self.combine)]
