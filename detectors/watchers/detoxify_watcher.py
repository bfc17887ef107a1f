"""Detoxify's toxicity categories as a watcher, loading offline from a local checkpoint.

Why the model is built here and not by `detoxify.Detoxify`: Detoxify 0.5.4 builds the
transformers config from the checkpoint's `config.arch.args.model_type`, a hub id such as
`bert-base-uncased`, and fetches config and tokenizer from the hub unless that field and
`huggingface_config_path` both name a local directory whose config.json already carries the
checkpoint's label count; it then loads the weights non-strictly, so a checkpoint that does
not fit its config scores with partly random weights after a warning. Here the checkpoint is
read with torch, the model class it names is built from `config_dir`'s config.json with the
checkpoint's label count (no hub, whatever the checkpoint says), and the weights load
strictly: a mismatch fails at start with the reason. Detoxify itself only supplies its release
URLs, for `model_type`, where the environment allows downloads.

Scores are Detoxify's (a sigmoid per category). Labels use Detoxify's standard names (toxic →
toxicity, severe_toxic → severe_toxicity, identity_hate → identity_attack), so one threshold
config reads the same for every checkpoint. Checkpoints with auxiliary outputs (unbiased and
multilingual have 16 heads: 7 categories and 9 identity mentions) expose what Detoxify
exposes: the first outputs, one per listed class.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from watchkeeper.detectors.watchers.base import Item, WatcherLoadError, WatcherSpec
from watchkeeper.detectors.watchers.loading import names_load_errors
from watchkeeper.detectors.watchers.model_files import position_limit
from watchkeeper.detectors.watchers.options import DetoxifyOptions
from watchkeeper.detectors.watchers.torch_runtime import device_and_dtype, inference

log = logging.getLogger(__name__)

# Detoxify's renaming, so that names agree between the original and the unbiased models.
STANDARD_NAMES = {"toxic": "toxicity", "identity_hate": "identity_attack",
                  "severe_toxic": "severe_toxicity"}
# Buffers that older checkpoints carry and newer transformers recompute.
IGNORABLE_SUFFIXES = ("position_ids",)


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint dict. Plain-data checkpoints load with `weights_only`; Lightning-era ones
    may pickle other objects and load fully, as Detoxify does (the file is the operator's)."""
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        log.warning("checkpoint needs full unpickling", extra={"checkpoint": str(path)})
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(loaded, dict) or "config" not in loaded or "state_dict" not in loaded:
        raise WatcherLoadError(f"{path} is not a Detoxify checkpoint (needs 'config' and "
                               "'state_dict')")
    return loaded


def _download_checkpoint(model_type: str) -> tuple[dict[str, Any], str]:
    """A released checkpoint through torch.hub (its cache first), and its release name."""
    import torch
    from detoxify.detoxify import MODEL_URLS

    url = MODEL_URLS.get(model_type)
    if url is None:
        raise WatcherLoadError(f"unknown model_type {model_type!r} (known: "
                               f"{', '.join(MODEL_URLS)})")
    try:
        loaded = torch.hub.load_state_dict_from_url(url, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise WatcherLoadError(f"cannot download the {model_type!r} checkpoint from {url} "
                               f"(no network? use checkpoint + config_dir offline): {exc}") from exc
    return loaded, url.rsplit("/", 1)[-1].removesuffix(".ckpt")


def _strip_prefix(state_dict: dict[str, Any], expected: set[str]) -> dict[str, Any]:
    """Lightning checkpoints prefix the module's attribute name ("model.")."""
    if expected & state_dict.keys():
        return state_dict
    for prefix in ("model.", "module."):
        stripped = {k.removeprefix(prefix): v for k, v in state_dict.items()}
        if expected & stripped.keys():
            return stripped
    return state_dict


class DetoxifyWatcher:
    """Toxicity categories per text (kind "detoxify").

    Options (`options.DetoxifyOptions`): `checkpoint` (a Detoxify .ckpt) with `config_dir`
    (config.json and tokenizer files), or `model_type` (original | unbiased | multilingual |
    original-small | unbiased-small) to download a release; `allow_download` (default: true
    with model_type alone, else false), `max_batch` (32), `max_length` (256 tokens), `device`,
    `precision`.
    """

    @names_load_errors
    def __init__(self, spec: WatcherSpec, options: DetoxifyOptions | None = None) -> None:
        options = DetoxifyOptions.of(spec) if options is None else options
        self.name = spec.name
        self.max_batch = options.max_batch
        self.max_length = options.max_length
        self.device, self.dtype = device_and_dtype(options)

        checkpoint, model_type = options.checkpoint, options.model_type
        config_dir = options.config_dir
        if checkpoint:
            path = checkpoint.expanduser()
            if not path.is_file():
                raise WatcherLoadError(f"checkpoint not found: {path}")
            loaded, self.version = _read_checkpoint(path), _fingerprint(path)
        elif model_type:
            loaded, self.version = _download_checkpoint(model_type)
        else:
            raise WatcherLoadError("set options.checkpoint (with config_dir) or "
                                   "options.model_type")
        allow_download = (bool(model_type) and not checkpoint if options.allow_download is None
                          else options.allow_download)

        try:
            arch = loaded["config"]["arch"]["args"]
            args = loaded["config"].get("dataset", {}).get("args", {})
            classes = list(args.get("classes") or arch.get("classes") or [])
            num_classes = int(arch["num_classes"])
            model_name, tokenizer_name = str(arch["model_name"]), arch.get("tokenizer_name")
        except (KeyError, TypeError, ValueError) as exc:
            raise WatcherLoadError(f"checkpoint config lacks arch.args / dataset.args.classes "
                                   f"as Detoxify writes them: {exc!r}") from exc
        if not classes or len(classes) > num_classes:
            raise WatcherLoadError(f"checkpoint lists {len(classes)} classes for a model with "
                                   f"{num_classes} outputs")
        self.labels: tuple[str, ...] = tuple(STANDARD_NAMES.get(c, c) for c in classes)

        if config_dir:
            source = config_dir.expanduser()
            if not (source / "config.json").is_file():
                raise WatcherLoadError(f"config_dir {source} holds no config.json (it needs the "
                                       "transformers config and tokenizer files)")
            location, local_only = str(source), True
        else:
            location, local_only = str(arch["model_type"]), not allow_download
        self.model, self.tokenizer = self._build(model_name, tokenizer_name, num_classes,
                                                 location, local_only, loaded["state_dict"])
        self.model.to(self.device).eval()
        self.max_length = min(self.max_length, position_limit(self.model, self.tokenizer))

    def _build(self, model_name: str, tokenizer_name: Any, num_classes: int, location: str,
               local_only: bool, state_dict: dict[str, Any]) -> tuple[Any, Any]:
        import transformers

        model_class = getattr(transformers, model_name, None)
        if model_class is None:
            raise WatcherLoadError(f"transformers has no model class {model_name!r}")
        tokenizer_class = getattr(transformers, str(tokenizer_name), None) or \
            transformers.AutoTokenizer
        try:
            config = model_class.config_class.from_pretrained(
                location, num_labels=num_classes, local_files_only=local_only)
            tokenizer = tokenizer_class.from_pretrained(location, local_files_only=local_only)
        except (OSError, ValueError) as exc:
            how = "offline" if local_only else "with downloads allowed"
            raise WatcherLoadError(f"cannot load the config and tokenizer from {location!r} "
                                   f"{how}: {exc}") from exc
        model = model_class(config)
        expected = set(model.state_dict())
        state_dict = _strip_prefix(dict(state_dict), expected)
        try:
            missing, unexpected = model.load_state_dict(state_dict, strict=False)
        except RuntimeError as exc:
            raise WatcherLoadError(f"checkpoint does not fit the config from {location!r} "
                                   f"(label count or model size): {str(exc)[:600]}") from exc
        params = {name for name, _ in model.named_parameters()}
        missing = [k for k in missing if k in params]
        unexpected = [k for k in unexpected if not k.endswith(IGNORABLE_SUFFIXES)]
        if missing or unexpected:
            raise WatcherLoadError(f"checkpoint does not fit {model_name} from {location!r}: "
                                   f"missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model, tokenizer

    def score(self, items: Sequence[Item]) -> list[dict[str, float]]:
        import torch

        out: list[dict[str, float]] = [{} for _ in items]
        order = sorted(range(len(items)), key=lambda i: len(items[i].text))
        for start in range(0, len(order), self.max_batch):
            chunk = order[start:start + self.max_batch]
            batch = self.tokenizer([items[i].text for i in chunk], return_tensors="pt",
                                   padding=True, truncation=True, max_length=self.max_length)
            with inference(self.device, self.dtype):
                logits = self.model(**batch.to(self.device)).logits
            probs = torch.sigmoid(logits.float())[:, :len(self.labels)].cpu().tolist()
            for i, row in zip(chunk, probs, strict=True):
                out[i] = dict(zip(self.labels, row, strict=True))
        return out
