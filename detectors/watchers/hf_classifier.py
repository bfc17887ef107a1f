"""Any transformers sequence classifier as a watcher: prompt injection, sentiment, NLI
groundedness. One loader for all of them, because they differ only in their labels (mapped to
ours by `label_map`), in how scores are normalised (softmax for one-of-N models, a sigmoid per
label for multi-label ones) and in whether they read one text or a pair.

Pair mode (the spec's field is "pair") feeds the item's `context` as the first sequence and its
`text` as the second, as NLI models expect premise then hypothesis: the completion is checked
against the prompt (label_map {"entailment": "grounded", "contradiction": "contradicted"}).
The model never downloads unless `allow_download` says so: a watch service should start the
same way every time, from files it already has.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from watchkeeper.detectors.watchers.base import Item, WatcherLoadError, WatcherSpec
from watchkeeper.detectors.watchers.loading import names_load_errors
from watchkeeper.detectors.watchers.model_files import fingerprint, position_limit
from watchkeeper.detectors.watchers.options import HFClassifierOptions
from watchkeeper.detectors.watchers.torch_runtime import device_and_dtype, inference


def _is_path(model: str) -> bool:
    """Hub ids are "name" or "owner/name"; anything else is meant as a local path."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or Path(model).exists()


def map_labels(id2label: dict[int, str], label_map: dict[str, str]) -> tuple[str, ...]:
    """Our label per model output, in output order; unknown keys in the map are typos."""
    names = [str(id2label[i]) for i in sorted(id2label)]
    by_lower = {n.lower(): n for n in names}
    resolved: dict[str, str] = {}
    unknown = []
    for key, value in label_map.items():
        name = key if key in names else by_lower.get(key.lower())
        if name is None:
            unknown.append(key)
        else:
            resolved[name] = str(value)
    if unknown:
        raise WatcherLoadError(f"label_map names labels the model does not have: {unknown} "
                               f"(model labels: {names})")
    labels = tuple(resolved.get(n, n.lower()) for n in names)
    if len(set(labels)) != len(labels):
        raise WatcherLoadError(f"labels collide after label_map: {labels}")
    return labels


class SequenceClassifier:
    """A transformers sequence classifier (kind "hf_classifier").

    Options (`options.HFClassifierOptions`): `model` (local directory or hub id, required),
    `revision`, `label_map` ({model label: our label}; others keep their model name,
    lowercased), `multi_label` (sigmoid per label; default from the config's problem_type, else
    softmax), `offline` (local files only; default true unless `allow_download`), `max_batch`
    (32), `max_length` (256 tokens, 512 in pair mode), `device`, `precision`.
    """

    @names_load_errors
    def __init__(self, spec: WatcherSpec, options: HFClassifierOptions | None = None) -> None:
        options = HFClassifierOptions.of(spec) if options is None else options
        self.name = spec.name
        self.pair = spec.field == "pair"
        self.max_batch = options.max_batch
        self.max_length = options.max_length or (512 if self.pair else 256)
        self.device, self.dtype = device_and_dtype(options)

        model = options.model
        if not model:
            raise WatcherLoadError("options.model is required (a local directory or a hub id)")
        offline = not options.allow_download if options.offline is None else options.offline
        local = _is_path(model)
        location = Path(model).expanduser() if local else None
        if location is not None and not (location / "config.json").is_file():
            raise WatcherLoadError(f"model path {location} not found or holds no config.json")
        self.model, self.tokenizer = self._from_pretrained(str(location or model),
                                                           options.revision, offline)
        self.model.to(self.device).eval()
        self.max_length = min(self.max_length, position_limit(self.model, self.tokenizer))

        config = self.model.config
        self.labels: tuple[str, ...] = map_labels(
            {int(k): v for k, v in config.id2label.items()}, dict(options.label_map))
        multi = options.multi_label
        # one logit can only be a sigmoid; a softmax over it would always say 1
        self.multi_label = (config.problem_type == "multi_label_classification"
                            or len(self.labels) == 1) if multi is None else bool(multi)
        # a local directory: its files; a hub model: the commit it resolved to, else its config
        commit = getattr(config, "_commit_hash", None) or options.revision
        if location is not None:
            self.version = fingerprint(location)
        elif commit:
            self.version = str(commit)[:12]
        else:
            self.version = hashlib.sha256(config.to_json_string().encode()).hexdigest()[:12]

    @staticmethod
    def _from_pretrained(model: str, revision: Any, offline: bool) -> tuple[Any, Any]:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        kwargs: dict[str, Any] = {"local_files_only": offline}
        if revision:
            kwargs["revision"] = str(revision)
        try:
            tokenizer = AutoTokenizer.from_pretrained(model, **kwargs)
            classifier = AutoModelForSequenceClassification.from_pretrained(model, **kwargs)
        except (OSError, ValueError) as exc:
            hint = (" (not in the local cache and downloads are off: set allow_download: true, "
                    "or give a local directory)" if offline else "")
            raise WatcherLoadError(f"cannot load classifier {model!r}{hint}: {exc}") from exc
        return classifier, tokenizer

    def score(self, items: Sequence[Item]) -> list[dict[str, float]]:
        import torch

        out: list[dict[str, float]] = [{} for _ in items]
        size = (lambda i: len(items[i].text) + len(items[i].context)) if self.pair else \
            (lambda i: len(items[i].text))
        order = sorted(range(len(items)), key=size)
        for start in range(0, len(order), self.max_batch):
            chunk = order[start:start + self.max_batch]
            texts = [items[i].text for i in chunk]
            if self.pair:
                batch = self.tokenizer([items[i].context for i in chunk], texts,
                                       truncation="longest_first", max_length=self.max_length,
                                       padding=True, return_tensors="pt")
            else:
                batch = self.tokenizer(texts, truncation=True, max_length=self.max_length,
                                       padding=True, return_tensors="pt")
            with inference(self.device, self.dtype):
                logits = self.model(**batch.to(self.device)).logits.float()
            probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
            for i, row in zip(chunk, probs.cpu().tolist(), strict=True):
                out[i] = dict(zip(self.labels, row, strict=True))
        return out
