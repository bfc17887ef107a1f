"""Fine-tuning the top layers of the trainable head's sentence encoder (`train-watcher
--tune-layers N`): the encoder learns what the labels mean rather than only a direction in a
frozen embedding space.

Why only the top layers, and why it fits on a CPU: the lower layers are run once per text and
their output kept (`lower_states`); each training step runs the top N layers forward and
backward, a third of the model for N = 2. Measured on 2 CPU cores with native bf16 (AVX512-BF16)
in docs/watchers.md: 350-420 texts per second for N = 2, a minute or two for tens of thousands
of short texts, against 125 per second for all six layers of all-MiniLM-L6-v2. Without
native bf16 the steps run in fp32, as the embedder does.

The loss is the head's: binary cross-entropy weighted as `head_training.balanced_weights`
says, starting from the linear head fitted on frozen embeddings. The result is the tuned
layers' tensors by their state_dict names, for `SentenceEmbedder.tuned` and a safetensors file
beside the head (no pickle).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from watchkeeper.detectors.watchers.head_training import LinearHead

if TYPE_CHECKING:
    from watchkeeper.detectors.watchers.embedding import SentenceEmbedder


@dataclass(frozen=True)
class Tuning:
    """How the encoder is tuned: the top `layers` layers, `epochs` passes over the training
    rows in batches of `batch`, AdamW at `lr` for the layers and `head_lr` for the head."""

    layers: int = 2
    epochs: float = 2.0
    batch: int = 32
    lr: float = 3e-5
    head_lr: float = 1e-3
    seed: int = 0

    def steps(self, rows: int) -> int:
        return max(1, int(self.epochs * rows / self.batch))


def encoder_layers(model: Any) -> Any:
    """The model's stack of transformer layers (BERT-like encoders: `encoder.layer`)."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__} has no encoder.layer stack: only BERT-like "
                         "encoders (all-MiniLM-L6-v2 and the like) can be tuned")
    return layers


def lower_states(embedder: SentenceEmbedder, texts: Sequence[str], skip: int,
                 progress: Callable[[int], None] | None = None) -> list[Any]:
    """Each text's hidden states below the top `skip` layers (bf16, one tensor per text, its
    own length): computed once, they are the input of every training step. `progress(n)`
    after each batch of n texts."""
    import torch

    from watchkeeper.detectors.watchers.torch_runtime import inference

    ids: list[list[int]] = embedder.tokenizer(
        list(texts), truncation=True, max_length=embedder.max_length,
        add_special_tokens=True)["input_ids"]
    layers = encoder_layers(embedder.model)
    lower = layers[:len(layers) - skip]
    states: list[Any] = [None] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), embedder.max_batch):
        rows = order[start:start + embedder.max_batch]
        input_ids, mask = embedder.pad([ids[r] for r in rows])
        with inference(embedder.device, embedder.dtype):
            hidden = run_layers(lower, embedder.model.embeddings(input_ids=input_ids), mask)
        for k, r in enumerate(rows):
            states[r] = hidden[k, :len(ids[r])].to(torch.bfloat16).cpu().clone()
        if progress is not None:
            progress(len(rows))
    return states


def tune_encoder(embedder: SentenceEmbedder, texts: Sequence[str], labels: np.ndarray,
                 weights: np.ndarray, head: LinearHead, tuning: Tuning,
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train the top `tuning.layers` layers of the embedder's model (a copy; the shared model
    is untouched) together with `head` on the 0/1 labels; returns the tuned layers' tensors
    by state_dict name. `progress(n)`: n texts run through the lower layers, then 1 per
    training step."""
    import torch

    layers = encoder_layers(embedder.model)
    if not 1 <= tuning.layers <= len(layers):
        raise ValueError(f"--tune-layers {tuning.layers}: the encoder has {len(layers)} "
                         "layers")
    first = len(layers) - tuning.layers
    states = lower_states(embedder, texts, tuning.layers, progress)
    top = torch.nn.ModuleList(copy.deepcopy(layers[first:])).to("cpu").train()
    linear = torch.nn.Linear(embedder.dimensions, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(head.coef.astype(np.float32))[None])
        linear.bias.fill_(head.intercept)
    optimiser = torch.optim.AdamW([{"params": top.parameters(), "lr": tuning.lr},
                                   {"params": linear.parameters(), "lr": tuning.head_lr}],
                                  weight_decay=0.01)
    y = torch.tensor(np.asarray(labels), dtype=torch.float32)
    w = torch.tensor(np.asarray(weights) / np.mean(weights), dtype=torch.float32)
    rng = np.random.default_rng(tuning.seed)
    torch.manual_seed(tuning.seed)
    batches = _length_batches(rng, [int(s.shape[0]) for s in states], tuning.batch)
    bf16 = embedder.dtype == torch.bfloat16  # native bf16 CPUs: autocast as in scoring
    for _ in range(tuning.steps(len(states))):
        batch = next(batches)
        pooled = _pooled(top, [states[i] for i in batch], embedder.pooling, bf16)
        logits = linear(torch.nn.functional.normalize(pooled, p=2, dim=1))[:, 0]
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(
            logits, y[batch], reduction="none") * w[batch]).mean()
        optimiser.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        if progress is not None:
            progress(1)
    prefix = _layer_prefix(embedder.model)
    return {f"{prefix}.{first + i}.{name}": tensor.detach().clone()
            for i, layer in enumerate(top) for name, tensor in layer.state_dict().items()}


def _layer_prefix(model: Any) -> str:
    layers = encoder_layers(model)
    return str(next(name for name, module in model.named_modules() if module is layers))


def _length_batches(rng: np.random.Generator, lengths: list[int], size: int
                    ) -> Iterator[list[int]]:
    """Endless shuffled batches of similar lengths (little padding): each epoch shuffles the
    rows, sorts windows of 50 batches by length, cuts them and shuffles the batches."""
    while True:
        order = [int(i) for i in rng.permutation(len(lengths))]
        batches = []
        for start in range(0, len(order), size * 50):
            window = sorted(order[start:start + size * 50], key=lambda i: lengths[i])
            batches += [window[i:i + size] for i in range(0, len(window), size)]
        for k in rng.permutation(len(batches)):
            yield batches[int(k)]


def _pooled(top: Any, states: list[Any], pooling: str, bf16: bool) -> Any:
    """The top layers over padded lower states, pooled as the embedder pools (with bf16
    autocast where the embedder uses it; the pooled vectors in fp32)."""
    import torch

    from watchkeeper.detectors.watchers.embedding import pool

    width = max(int(s.shape[0]) for s in states)
    hidden = torch.zeros(len(states), width, states[0].shape[1])
    mask = torch.zeros(len(states), width)
    for row, state in enumerate(states):
        hidden[row, :state.shape[0]] = state.float()
        mask[row, :state.shape[0]] = 1
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hidden = run_layers(top, hidden, mask)
    return pool(hidden.float(), mask, pooling)


def run_layers(layers: Any, hidden: Any, mask: Any) -> Any:
    """Transformer layers over hidden states (batch, tokens, dim), the padding that `mask`
    (batch, tokens; 1 = token) leaves out masked by an additive attention bias. Only the
    layers asked for run: the lower ones for `lower_states`, the top ones per step."""
    bias = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * -1e4
    for layer in layers:
        out = layer(hidden, bias)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden
