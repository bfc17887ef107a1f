"""What the transformers watchers read off a local model: a cheap identity of its files (the
watcher's version, so that scores say which weights made them) and the longest input it takes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_MIB = 1 << 20


def digest_weights_file(digest: Any, path: Path) -> None:
    """Feed a weights file's name, size, first and last MiB to `digest` (a hashlib object):
    enough to tell weights apart, where hashing gigabytes at every start would add seconds."""
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}".encode())
    with path.open("rb") as f:
        digest.update(f.read(_MIB))
        f.seek(max(0, size - _MIB))
        digest.update(f.read(_MIB))


def file_sha256(path: Path) -> str:
    """The whole file's SHA-256 (hex), read in blocks: for files whose digest is pinned."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(directory: Path) -> str:
    """A short, cheap identity of a local model: config.json in full and each weight file's
    ends (see digest_weights_file), in file name order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        if path.name == "config.json":
            digest.update(path.read_bytes())
        elif path.name.endswith(WEIGHT_SUFFIXES):
            digest_weights_file(digest, path)
    return digest.hexdigest()[:12]


def position_limit(model: Any, tokenizer: Any) -> int:
    """The longest input the model takes: truncating past it would fail on long texts."""
    limits = [n for n in (getattr(model.config, "max_position_embeddings", None),
                          getattr(tokenizer, "model_max_length", None))
              if isinstance(n, int) and n > 0]
    return min(limits) if limits else 512
