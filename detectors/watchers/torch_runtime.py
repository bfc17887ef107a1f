"""Where and how torch watchers run: CUDA with bf16 (or fp16) autocast when a GPU is there,
the CPU otherwise (with bf16 autocast where the CPU has fast bf16), chosen once at load."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from watchkeeper.detectors.watchers.base import WatcherLoadError
from watchkeeper.detectors.watchers.options import WatcherOptions


def resolve_device(option: str = "auto") -> str:
    import torch

    if option == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if option.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {option!r} asked for, but torch sees no CUDA device")
    return option


def autocast_dtype(device: str, precision: str = "auto") -> Any:
    """None means full precision. On CUDA, bf16 where the GPU supports it, else fp16."""
    import torch

    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


@contextlib.contextmanager
def inference(device: str, dtype: Any) -> Iterator[None]:
    import torch

    with torch.inference_mode():
        if dtype is None:
            yield
        else:
            with torch.autocast(device_type=device.split(":")[0], dtype=dtype):
                yield


def device_and_dtype(options: WatcherOptions) -> tuple[str, Any]:
    """A watcher's `device` and `precision` options, resolved once at load: a device that torch
    cannot see fails the watcher's start, not its first batch."""
    try:
        device = resolve_device(options.device)
    except RuntimeError as exc:
        raise WatcherLoadError(str(exc)) from exc
    return device, autocast_dtype(device, options.precision)
